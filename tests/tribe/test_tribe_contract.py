"""The Tribe connector passes the contract kit of every capability it declares, against the
Tribe emulator."""

from __future__ import annotations

import json

import pytest
from syncd_tribe.connector import TribeConnector
from syncd_tribe.webhooks import sign

from syncd.config.schema import Secret
from syncd.records import Need, NeedKind, SchemaNeeds
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

MISSING = "0a7c3a52-6c1f-4b55-9b0e-2f7d4f1b0fff"
KEY = "integrations.demo.fields.FirstName"


class TribeHarness(Harness):
    page_size = 7

    def source_ids(self) -> list[str]:
        return [p["ID"] for p in self.emulator.persons()]

    def delete_record(self, record_id: str) -> None:
        self.emulator.api_session().delete(
            f"{self.emulator.url}/v1/odata/Relation_Person({record_id})").raise_for_status()

    def missing_id(self) -> str:
        return MISSING

    def webhook(self, record_id: str) -> tuple[dict[str, str], bytes]:
        body = json.dumps({"webhookId": "wh-contract", "payload": {
            "type": "EntityUpdateMutation", "entityType": "Relation.Person",
            "entityId": record_id}}).encode()
        return {self.emulator.signature_header: sign(self.emulator.webhook_secret, body)}, body

    def labelled(self) -> tuple[str, str]:
        person = next(p for p in self.emulator.persons()[1:] if p["Labels"])
        return person["ID"], person["Labels"][0]["Name"]

    def labels(self, record_id: str) -> set[str]:
        return {label["Name"] for label in self.emulator.person(record_id)["Labels"]}

    def group(self) -> tuple[str, list[str]]:
        return "Contract", [p["ID"] for p in self.emulator.persons()
                            if p.get("LastName") == self.last_name]

    def employee(self) -> str | None:
        return self.emulator.employee_id

    def needs_met(self) -> SchemaNeeds:
        return SchemaNeeds("source", (Need(NeedKind.FIELD, "FirstName", KEY),))

    def needs_unmet(self) -> tuple[SchemaNeeds, str]:
        return SchemaNeeds("source", (Need(NeedKind.FIELD, "FirstNaem", KEY),)), KEY


class TestTribeContract(ConnectorContract, RecordReaderContract, WebhookSourceContract,
                        DirectReaderContract, ConsentWriterContract, GroupReaderContract,
                        SchemaCheckerContract, EngagementWriterContract, TaskCreatorContract):
    @pytest.fixture
    def harness(self, emulator):
        last_name = sorted({p["LastName"] for p in emulator.persons()[1:]})[0]
        config = {**TribeConnector.sandbox_config(emulator), "requests_per_second": 0.0,
                  "max_attempts": 2,  # a 5xx for ever is retried once, not for 15 s of back-off
                  "groups": {"Contract": f"LastName eq '{last_name}'"},
                  "client_secret": Secret(emulator.client_secret),
                  "webhook_secret": Secret(emulator.webhook_secret)}
        connector = TribeConnector("crm", config)  # secrets as the config loader gives them
        connector.start()
        harness = TribeHarness(connector, emulator, secrets=(
            emulator.client_secret, emulator.webhook_secret))
        harness.last_name = last_name
        yield harness
        connector.stop()


def test_the_contracts_cover_every_capability_of_the_tribe_connector():
    assert_contracts_cover(TribeConnector, [TestTribeContract])
