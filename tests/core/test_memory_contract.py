"""The memory connector passes the contract kit of every capability it declares."""

from __future__ import annotations

import pytest

from syncd.config.schema import Secret
from syncd.records import Consent, Profile, Record
from syncd.testing import (
    WORLDS,
    BulkWriterContract,
    ConnectorContract,
    ConsentChangeReaderContract,
    ConsentWriterContract,
    DirectReaderContract,
    GroupReaderContract,
    Harness,
    MemoryConnector,
    ProfileDeleterContract,
    ProfileReaderContract,
    ProfileWriterContract,
    RecordReaderContract,
    WebhookSourceContract,
    World,
    assert_contracts_cover,
    memory_webhook,
)

SECRET = "memory-webhook-secret-0815"


class MemoryHarness(Harness):
    page_size = 4

    @property
    def world(self) -> World:
        return self.connector.world  # type: ignore[attr-defined,no-any-return]

    def source_ids(self) -> list[str]:
        return sorted(self.world.records)

    def delete_record(self, record_id: str) -> None:
        del self.world.records[record_id]

    def missing_id(self) -> str:
        return "p-missing"

    def webhook(self, record_id: str) -> tuple[dict[str, str], bytes]:
        body, headers = memory_webhook([record_id], SECRET)
        return headers, body

    def labelled(self) -> tuple[str, str]:
        return "p-01", "Newsletter"

    def labels(self, record_id: str) -> set[str]:
        return set(self.world.records[record_id].labels)

    def group(self) -> tuple[str, list[str]]:
        return "Even", [i for i in self.source_ids() if int(i[2:]) % 2 == 0]

    def profile(self, key: str):
        return self.world.profiles.get(key)

    def subscribed_profile(self, key: str) -> tuple[Profile, str, str]:
        return (Profile(key, f"{key}@example.org", consents=(Consent("news", "email", True),)),
                "news", "email")

    def unsubscribe(self, key: str, topic: str, channel: str) -> None:
        self.world.unsubscribe(key, topic, channel)

    def readable_profile(self, key: str) -> Profile:
        with self.world.lock:
            self.world.profiles[key] = {"email": f"{key}@example.org", "crm_id": key,
                                        "firstname": "Jan"}
            self.world.consents[key] = {("news", "email"): True, ("offers", "email"): False}
            self.world.tags[key] = {"vip": True}
        return Profile(key, f"{key}@example.org", {"firstname": "Jan"},
                       (Consent("news", "email", True), Consent("offers", "email", False)),
                       {"vip": True})

    def change_in_partner(self, key: str) -> tuple[str, object]:
        with self.world.lock:
            self.world.profiles[key]["firstname"] = "Changed"
        return "firstname", "Changed"


class TestMemoryContract(ConnectorContract, RecordReaderContract, WebhookSourceContract,
                         DirectReaderContract, ConsentWriterContract, GroupReaderContract,
                         ProfileWriterContract, ProfileDeleterContract, BulkWriterContract,
                         ConsentChangeReaderContract, ProfileReaderContract):
    @pytest.fixture
    def harness(self, request):
        name = f"contract:{request.node.nodeid}"
        world = WORLDS[name] = World()
        for i in range(1, 11):
            world.records[f"p-{i:02}"] = Record(f"p-{i:02}", {"n": i}, email=f"p{i}@x.nl",
                                                labels=frozenset({"Newsletter"}))
        world.groups["Even"] = {f"p-{i:02}" for i in range(2, 11, 2)}
        connector = MemoryConnector("mem", {"world": name, "webhook_secret": Secret(SECRET)})
        connector.start()
        yield MemoryHarness(connector, secrets=(SECRET,))
        connector.stop()
        WORLDS.pop(name, None)


def test_the_contracts_cover_every_capability_of_the_memory_connector():
    assert_contracts_cover(MemoryConnector, [TestMemoryContract])
