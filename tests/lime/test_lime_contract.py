"""The Lime connector passes the contract kit of every capability it declares, against the
Lime emulator (under each of its paging settings)."""

from __future__ import annotations

import json

import pytest
from syncd_lime.connector import LimeConnector
from syncd_lime.webhooks import sign

from syncd.plugin import Need, NeedKind, SchemaNeeds, Secret
from syncd.testing import (
    ConnectorContract,
    ConsentWriterContract,
    DirectReaderContract,
    EngagementWriterContract,
    GroupReaderContract,
    Harness,
    RecordReaderContract,
    SchemaCheckerContract,
    TaskCreatorContract,
    WebhookSourceContract,
    assert_contracts_cover,
)

KEY = 'integrations.demo.fields."company.name"'


class LimeHarness(Harness):
    """Record ids are the persons' keys: the connection's key prefix and the Lime id."""

    page_size = 7

    def key(self, person_id: object) -> str:
        return f"{self.connector.keys.prefix}{person_id}"

    def pid(self, record_id: str) -> int:
        pid = self.connector.person_id(record_id)
        assert pid is not None, record_id
        return pid

    def source_ids(self) -> list[str]:
        return [self.key(p) for p in self.emulator.store.objects["person"]]

    def delete_record(self, record_id: str) -> None:
        self.emulator.api_session().delete(
            f"{self.emulator.url}/api/v1/limeobject/person/{self.pid(record_id)}/",
            timeout=10).raise_for_status()

    def missing_id(self) -> str:
        return self.key(999999)

    def webhook(self, record_id: str) -> tuple[dict[str, str], bytes]:
        body = json.dumps({"event": "person.update", "body": {
            "id": self.pid(record_id), "limetype": "person", "values": {},
            "original_values": {}}}).encode()
        return {"X-Lime-Signature": sign(self.emulator.webhook_secret, body)}, body

    def _types(self) -> dict[int, str]:
        return {t["_id"]: t["title"] for t in self.emulator.store.objects["consenttype"].values()}

    def labels(self, record_id: str) -> set[str]:
        newest: dict[int, dict] = {}
        for c in self.emulator.consents_of(self.pid(record_id)):
            t = c["consenttype"]
            if t is not None and (t not in newest or c["date"] >= newest[t]["date"]):
                newest[t] = c
        return {self._types()[t] for t, c in newest.items() if c["approved"]}

    def labelled(self) -> tuple[str, str]:
        for pid in sorted(self.emulator.store.objects["person"]):
            labels = self.labels(self.key(pid))
            if labels:
                return self.key(pid), sorted(labels)[0]
        raise AssertionError("no person with an approved consent")

    def group(self) -> tuple[str, list[str]]:
        return "Contract", [self.key(p) for p, o in self.emulator.store.objects["person"].items()
                            if o["customertype"] == "A"]

    def employee(self) -> str | None:
        return str(min(self.emulator.store.objects["coworker"]))

    def needs_met(self) -> SchemaNeeds:
        return SchemaNeeds("source", (Need(NeedKind.FIELD, "company.name", KEY),
                                      Need(NeedKind.LABEL, "Newsletter", "k.label")))

    def needs_unmet(self) -> tuple[SchemaNeeds, str]:
        return SchemaNeeds("source", (Need(NeedKind.FIELD, "company.nmae", KEY),)), KEY


class TestLimeContract(ConnectorContract, RecordReaderContract, WebhookSourceContract,
                       DirectReaderContract, ConsentWriterContract, GroupReaderContract,
                       SchemaCheckerContract, EngagementWriterContract, TaskCreatorContract):
    @pytest.fixture(params=[None, "", "acme:"], ids=["derived", "plain", "acme"])
    def harness(self, request, emulator, paging):
        config = {**LimeConnector.sandbox_config(emulator), "requests_per_second": 0.0,
                  "key_prefix": request.param,
                  "max_attempts": 4, "groups": {"Contract": "customertype=A"},
                  "api_key": Secret(emulator.api_key),
                  "webhook_secret": Secret(emulator.webhook_secret)}
        connector = LimeConnector("crm", config)  # secrets as the config loader gives them
        connector.start()
        yield LimeHarness(connector, emulator, secrets=(emulator.api_key,
                                                         emulator.webhook_secret))
        connector.stop()


def test_the_contracts_cover_every_capability_of_the_lime_connector():
    assert_contracts_cover(LimeConnector, [TestLimeContract])
