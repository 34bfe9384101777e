"""The APSIS One connector passes the contract kit of every capability it declares, against
the APSIS emulator."""

from __future__ import annotations

import time

import pytest
from syncd_apsis.audience import CRM_ID
from syncd_apsis.connector import ApsisConnector

from syncd.config.schema import Secret
from syncd.records import Consent, Need, NeedKind, Profile, SchemaNeeds
from syncd.testing import (
    BulkWriterContract,
    ConnectorContract,
    ConsentChangeReaderContract,
    EngagementReaderContract,
    Harness,
    ProfileDeleterContract,
    ProfileReaderContract,
    ProfileWriterContract,
    SchemaCheckerContract,
    assert_contracts_cover,
    wait_for,
)

NEWSLETTER = "com.apsis1.topics.newsletter"
OFFERS = "com.apsis1.topics.offers"
KEY = 'integrations.demo.fields."FirstName"'


class ApsisHarness(Harness):
    def profile(self, key: str):
        return self.emulator.profile(key)

    def new_profile(self, key: str) -> Profile:
        return Profile(key, f"{key}@example.org", {"com.apsis1.attributes.firstname": "Jan"})

    def subscribed_profile(self, key: str) -> tuple[Profile, str, str]:
        return (Profile(key, f"{key}@example.org",
                        consents=(Consent(NEWSLETTER, "email", True),)), NEWSLETTER, "email")

    def unsubscribe(self, key: str, topic: str, channel: str) -> None:
        row = self.emulator.unsubscribe(key, topic, duplicate=False, zero_time=False)
        # an export window is half-open at millisecond precision: let the clock pass the
        # event's millisecond, so that an export asked now includes it
        assert wait_for(lambda: time.time() * 1000 > row["event_time"] + 1, timeout=1)

    def engagement_event(self) -> str:
        profile = self.new_profile("contract-opened")
        assert self.connector.write_profiles([profile], set())[0].outcome == "created"
        row = self.emulator.record_event("contract-opened", "OPENED", duplicate=False,
                                         zero_time=False)
        assert wait_for(lambda: time.time() * 1000 > row["event_time"] + 1, timeout=1)
        return "contract-opened"

    def readable_profile(self, key: str) -> Profile:
        with self.emulator.lock:
            self.emulator.audience.write(CRM_ID, key, self.emulator.section, {
                "com.apsis1.attributes.email": f"{key}@example.org",
                "com.apsis1.attributes.firstname": "Jan"}, create=True)
        self.emulator.change_profile(key, consents={f"{NEWSLETTER}|email": "opt-in",
                                                    f"{OFFERS}|email": "opt-out"},
                                     tags={"vip": True})
        return Profile(key, f"{key}@example.org", {"com.apsis1.attributes.firstname": "Jan"},
                       (Consent(NEWSLETTER, "email", True), Consent(OFFERS, "email", False)),
                       {"vip": True})

    def change_in_partner(self, key: str) -> tuple[str, object]:
        self.emulator.change_profile(key, attributes={"com.apsis1.attributes.firstname": "Jo"})
        return "com.apsis1.attributes.firstname", "Jo"

    def needs_met(self) -> SchemaNeeds:
        return SchemaNeeds("destination", (
            Need(NeedKind.ATTRIBUTE, "com.apsis1.attributes.firstname", KEY),))

    def needs_unmet(self) -> tuple[SchemaNeeds, str]:
        return SchemaNeeds("destination", (
            Need(NeedKind.ATTRIBUTE, "com.apsis1.attributes.firstnaem", KEY),)), KEY


class TestApsisContract(ConnectorContract, ProfileWriterContract, ProfileDeleterContract,
                        BulkWriterContract, ConsentChangeReaderContract,
                        SchemaCheckerContract, EngagementReaderContract,
                        ProfileReaderContract):
    @pytest.fixture
    def harness(self, emu):
        config = {**ApsisConnector.sandbox_config(emu), "backoff": 0.02,
                  "export_poll_interval": 0.05}
        config.pop("kind")
        config["client_secret"] = Secret(config["client_secret"])  # as the loader gives it
        connector = ApsisConnector("apsis", config)
        connector.start()
        yield ApsisHarness(connector, emu, secrets=(config["client_secret"].reveal(),))
        connector.stop()


def test_the_contracts_cover_every_capability_of_the_apsis_connector():
    assert_contracts_cover(ApsisConnector, [TestApsisContract])
