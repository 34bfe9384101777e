"""A tag or consent write that APSIS applied but whose answer was lost (the emulator's
"applied, then failed" faults: a 502, a dropped connection, a hang past the client's
timeout), then the CRM goes back to the value before: syncd must write that value back, not
take it as "unchanged" against what it recorded before the lost write.

Real emulators (Tribe or Lime as the CRM, APSIS One), a real coordinator over real connection
actors and a real SQLite file; the CRM's changes reach the coordinator as inbox events, each
given one attempt (the lost answer makes a dead letter)."""

from __future__ import annotations

import datetime as dt

import pytest
from crm_support import apsis_emulator
from syncd_apsis.connector import ApsisConnector
from syncd_apsis.emulator import ApsisEmulator
from syncd_lime.connector import LimeConnector
from syncd_lime.keys import derived_prefix
from syncd_tribe.connector import TribeConnector

from syncd.config.model import Condition, ConsentMapping, IntegrationConfig
from syncd.connectors.connection import ConnectionActor
from syncd.engine.coordinator import Coordinator, Progress
from syncd.engine.guard import guard_status
from syncd.engine.rules import Rules
from syncd.engine.store import Store
from syncd.records import Event
from syncd.testing import wait_for

pytestmark = pytest.mark.usefixtures("actors")

TOPIC = "com.apsis1.topics.newsletter"
NEWSLETTER = ConsentMapping("Newsletter", TOPIC, "email")
FAULTS = pytest.mark.parametrize("fault", [502, 0, 504], ids=["502", "dropped", "hang"])


class Sync:
    """One integration from a CRM emulator into the APSIS emulator."""

    def __init__(self, tmp_path, apsis: ApsisEmulator, source, integration: IntegrationConfig):
        self.apsis, self.integration = apsis, integration
        self.store = Store(str(tmp_path / "syncd.db"))
        # one attempt per request and a short timeout: a lost answer is a failed write
        dst = {**ApsisConnector.sandbox_config(apsis), "max_attempts": 1, "timeout": 0.3,
               "backoff": 0.02}
        dst.pop("kind")
        refs = {"crm": ConnectionActor.start(source),
                "apsis": ConnectionActor.start(ApsisConnector("apsis", dst))}
        caps = {"source": type(source).capabilities, "destination": ApsisConnector.capabilities}
        rules = Rules.from_integration(integration, ApsisConnector.canonical_attribute)
        self.coord = Coordinator.start(integration, rules, self.store,
                                       lambda n: refs[n].proxy(), progress=Progress(),
                                       capabilities=caps).proxy()

    def event(self, record_id: str) -> None:
        self.store.enqueue([(self.integration.name, "crm", Event(record_id))])
        self.coord.notify().get(timeout=5)
        assert wait_for(lambda: self.store.pending_count(self.integration.name) == 0, 20)

    def lost(self, fault: int, path: str) -> None:
        """The next write whose path contains ``path`` is applied, then its answer lost."""
        self.apsis.set_faults(fail_after_next=[fault], fail_after_path=path, hang_seconds=0.6)

    def dead(self) -> int:
        return len(self.store.dead_letters(self.integration.name))

    def flips_counted(self) -> int:
        return guard_status(self.store, self.integration)["count"]


@pytest.fixture
def apsis():
    with apsis_emulator(seed=3) as emu:
        yield emu


# -- Tribe ---------------------------------------------------------------------------------


def tribe_sync(tmp_path, apsis, tribe) -> Sync:
    source = TribeConnector("crm", {**TribeConnector.sandbox_config(tribe),
                                    "requests_per_second": 0.0})
    return Sync(tmp_path, apsis, source, IntegrationConfig(
        "tribe", "crm", "apsis", conditions=(Condition("Contact.CustomerType", "A"),),
        fields={"FirstName": "firstname"}, consents=(NEWSLETTER,),
        selections={"Events": "events"}, max_attempts=1))


def tribe_person(tribe) -> str:
    """A person whose contact is of CustomerType A, without the Newsletter and Events labels."""
    a_persons = {str(c["Person"]["ID"]) for c in tribe.contacts()
                 if c.get("CustomerType") == "A" and c.get("Person")}
    for person in tribe.persons()[1:]:  # [0] is the API's virtual user
        names = {lab["Name"] for lab in person["Labels"]}
        if str(person["ID"]) in a_persons and not names & {"Newsletter", "Events"}:
            return str(person["ID"])
    raise AssertionError("the seed has no such person")


def set_tribe_label(tribe, pid: str, label: str, on: bool) -> None:
    """A user sets or removes a label on the person, through Tribe's API."""
    ids = {lab["Name"]: lab["ID"] for lab in tribe.labels()}
    names = {lab["Name"] for lab in tribe.person(pid)["Labels"]}
    names = names | {label} if on else names - {label}
    with tribe.api_session() as session:
        session.put(f"{tribe.url}/v1/odata/Relation_Person({pid})", timeout=10,
                    json={"Labels": [{"ID": ids[n]} for n in sorted(names)]}
                    ).raise_for_status()


@FAULTS
def test_tribe_a_tag_set_whose_answer_was_lost_is_cleared_when_the_crm_goes_back(
        tmp_path, apsis, tribe, fault):
    sync = tribe_sync(tmp_path, apsis, tribe)
    pid = tribe_person(tribe)
    key = pid.lower()
    sync.event(pid)
    assert apsis.profile(key) is not None and not apsis.tags(key).get("events")
    set_tribe_label(tribe, pid, "Events", True)
    sync.lost(fault, "/tags")
    sync.event(pid)
    assert apsis.stats()["applied_then_failed"] == 1 and sync.dead() == 1
    assert apsis.tags(key)["events"] is True  # applied, its answer lost
    set_tribe_label(tribe, pid, "Events", False)  # the CRM goes back
    sync.event(pid)
    assert apsis.tags(key)["events"] is False
    assert sync.dead() == 1  # the change back was written and answered


@FAULTS
def test_tribe_an_opt_in_whose_answer_was_lost_is_opted_out_when_the_crm_goes_back(
        tmp_path, apsis, tribe, fault):
    sync = tribe_sync(tmp_path, apsis, tribe)
    pid = tribe_person(tribe)
    key = pid.lower()
    sync.event(pid)
    assert not apsis.consents(key)  # a new profile's opt-out is not sent
    set_tribe_label(tribe, pid, "Newsletter", True)
    sync.lost(fault, "/consents")
    sync.event(pid)
    assert apsis.stats()["applied_then_failed"] == 1 and sync.dead() == 1
    assert set(apsis.consents(key).values()) == {"opt-in"}  # applied, its answer lost
    set_tribe_label(tribe, pid, "Newsletter", False)  # the CRM goes back
    sync.event(pid)
    assert set(apsis.consents(key).values()) == {"opt-out"}
    # the opt-in, and the opt-out over the opt-in that landed: each a flip, counted once
    assert sync.flips_counted() == 2


def test_tribe_an_opt_out_resent_after_a_lost_answer_is_counted_once(tmp_path, apsis, tribe):
    sync = tribe_sync(tmp_path, apsis, tribe)
    pid = tribe_person(tribe)
    key = pid.lower()
    set_tribe_label(tribe, pid, "Newsletter", True)
    sync.event(pid)
    assert set(apsis.consents(key).values()) == {"opt-in"}
    set_tribe_label(tribe, pid, "Newsletter", False)
    sync.lost(502, "/consents")
    sync.event(pid)
    assert set(apsis.consents(key).values()) == {"opt-out"} and sync.dead() == 1
    assert sync.flips_counted() == 1
    sync.event(pid)  # the same again (a retry of the dead letter, a full sync)
    assert set(apsis.consents(key).values()) == {"opt-out"}
    assert sync.flips_counted() == 1  # the flip was counted when first sent
    assert sync.dead() == 1


# -- Lime ----------------------------------------------------------------------------------


def lime_sync(tmp_path, apsis, lime) -> Sync:
    source = LimeConnector("crm", {**LimeConnector.sandbox_config(lime)})
    return Sync(tmp_path, apsis, source, IntegrationConfig(
        "lime", "crm", "apsis", conditions=(Condition("customertype", "A"),),
        fields={"firstname": "firstname"}, consents=(NEWSLETTER,), max_attempts=1))


def newsletter_type(lime) -> int:
    return next(t["_id"] for t in lime.store.objects["consenttype"].values()
                if t["title"] == "Newsletter")


def lime_person(lime) -> int:
    """A person of customer type A with an e-mail address and no Newsletter consent."""
    kind = newsletter_type(lime)
    for pid, person in sorted(lime.store.objects["person"].items()):
        if person["customertype"] == "A" and person["email"] and not any(
                c["consenttype"] == kind for c in lime.consents_of(pid)):
            return pid
    raise AssertionError("the seed has no such person")


def set_lime_consent(lime, pid: int, approved: bool) -> None:
    """A user gives or withdraws the Newsletter consent in Lime: a newer consent object."""
    now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    lime.create("consent", {"person": pid, "consenttype": newsletter_type(lime),
                            "approved": approved, "date": now})


@FAULTS
def test_lime_an_opt_in_whose_answer_was_lost_is_opted_out_when_the_crm_goes_back(
        tmp_path, apsis, lime, fault):
    sync = lime_sync(tmp_path, apsis, lime)
    pid = lime_person(lime)
    key = f"{derived_prefix(lime.url)}{pid}"  # its key: the instance's prefix, the id
    sync.event(key)
    assert apsis.profile(key) is not None and not apsis.consents(key)
    set_lime_consent(lime, pid, True)
    sync.lost(fault, "/consents")
    sync.event(key)
    assert apsis.stats()["applied_then_failed"] == 1 and sync.dead() == 1
    assert set(apsis.consents(key).values()) == {"opt-in"}  # applied, its answer lost
    set_lime_consent(lime, pid, False)  # the CRM goes back
    sync.event(key)
    assert set(apsis.consents(key).values()) == {"opt-out"}
    assert sync.flips_counted() == 2  # the opt-in and the opt-out, each once


def test_lime_a_write_back_whose_answer_was_lost_never_withdraws_a_newer_consent(
        tmp_path, apsis, lime):
    """An unsubscribe in APSIS is written back to Lime (approved = false); Lime applies it,
    its answer is lost, so the write-back stays pending. The person then gives the consent
    again in Lime: that newer consent reaches APSIS, and the pending write-back is dropped,
    never withdrawing the newer consent at the next poll."""
    source = LimeConnector("crm", {**LimeConnector.sandbox_config(lime), "max_attempts": 1,
                                   "backoff": 0.02})
    sync = Sync(tmp_path, apsis, source, IntegrationConfig(
        "lime", "crm", "apsis", conditions=(Condition("customertype", "A"),),
        fields={"firstname": "firstname"}, consents=(NEWSLETTER,), max_attempts=1))
    pid = lime_person(lime)
    key = f"{derived_prefix(lime.url)}{pid}"  # its key: the instance's prefix, the id
    set_lime_consent(lime, pid, True)
    sync.event(key)
    assert set(apsis.consents(key).values()) == {"opt-in"}

    def poll() -> None:  # the consent job: read APSIS' opt-outs, write them back to Lime
        sync.coord.run_job("consent_changes", {}).get(timeout=30)

    def newest() -> bool:
        kind = newsletter_type(lime)
        return max((c for c in lime.consents_of(pid) if c["consenttype"] == kind),
                   key=lambda c: (c["date"], c["_id"]))["approved"]

    poll()  # the first read starts from now
    apsis.unsubscribe(key, TOPIC)
    lime.set_faults(fail_after_next=[502], fail_after_path="/limeobject/consent/")
    assert wait_for(lambda: poll() or lime.stats()["applied_then_failed"] == 1, 30)
    assert newest() is False  # written back, its answer lost
    assert sync.store.unwritten_optouts("lime")  # so still pending
    set_lime_consent(lime, pid, True)  # the person opts in again, after the unsubscribe
    sync.event(key)
    assert set(apsis.consents(key).values()) == {"opt-in"}
    poll()
    assert newest() is True and set(apsis.consents(key).values()) == {"opt-in"}
    assert sync.store.unwritten_optouts("lime") == []
