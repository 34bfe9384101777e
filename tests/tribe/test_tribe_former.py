"""A person's "Former" status (apis.md 1.4: the status is [DOC], its API name a [GAP]): the
Tribe emulator's ``person_former_field`` switch, and what syncd does with a former person in a
contact sync: the flag is a field of the record like any other (conditions may use it), and
marking a person former deletes nothing (seed 001: contacts that stop matching are not
deleted unless the integration enables it; seed 002: marking former deletes nothing)."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET

import pytest
from syncd_tribe.connector import TribeConnector
from syncd_tribe.emulator import TribeEmulator

from syncd.config.model import Condition, IntegrationConfig
from syncd.connectors.connection import ConnectionActor
from syncd.engine.coordinator import Coordinator, Progress
from syncd.engine.rules import Rules
from syncd.engine.store import Store
from syncd.records import Event, Need, NeedKind, SchemaNeeds
from syncd.testing import MemoryConnector, wait_for

PERSONS = "/v1/odata/Relation_Person"
EDM = "{http://docs.oasis-open.org/odata/ns/edm}"


def person_properties(emulator) -> dict[str, str]:
    """The properties ``$metadata`` declares on the person type itself: name -> Edm type."""
    text = emulator.api_session().get(f"{emulator.url}/v1/odata/$metadata").text
    for entity in ET.fromstring(text).iter(f"{EDM}EntityType"):
        if entity.get("Name") == "Relation_Person":
            return {p.get("Name"): p.get("Type") for p in entity.iter(f"{EDM}Property")}
    raise AssertionError("no Relation_Person type in $metadata")


def test_persons_have_isformer_by_default(emulator):
    assert emulator.person_former_field == "IsFormer"
    assert person_properties(emulator)["IsFormer"] == "Edm.Boolean"
    session, base = emulator.api_session(), f"{emulator.url}{PERSONS}"
    rows = session.get(f"{base}?$select=ID,IsFormer&$top=5").json()["value"]
    assert rows and all(r["IsFormer"] is False for r in rows)  # no one is former at first
    pid = rows[1]["ID"]
    assert session.put(f"{base}({pid})", json={"IsFormer": True}).status_code == 200
    assert emulator.person(pid)["IsFormer"] is True
    created = session.post(base, json={"LastName": "New"}).json()
    assert created["IsFormer"] is None  # not set: null, as any field not given


@pytest.mark.parametrize("name", [None, "Former"], ids=["none", "named-Former"])
def test_the_switch_names_the_flag_or_leaves_persons_without(emulator, name):
    pid = emulator.persons()[1]["ID"]
    session, base = emulator.api_session(), f"{emulator.url}{PERSONS}"
    session.put(f"{base}({pid})", json={"IsFormer": True}).raise_for_status()
    emulator.person_former_field = name
    props = person_properties(emulator)
    assert "IsFormer" not in props
    if name:
        assert props[name] == "Edm.Boolean"
    person = session.get(f"{base}({pid})").json()
    assert "IsFormer" not in person
    if name:
        assert person[name] is True  # the same flag under the account's name
        assert session.put(f"{base}({pid})", json={name: False}).status_code == 200
        assert session.get(f"{base}({pid})?$select=ID,{name}").json()[name] is False
    refused = session.put(f"{base}({pid})", json={"IsFormer": True})
    assert refused.status_code == 400 and "IsFormer" in refused.text
    assert session.get(f"{base}?$top=1&$select=ID,IsFormer").status_code == 400
    # the contacts keep their own IsFormer whatever the persons have
    contact = emulator.contacts()[0]["ID"]
    assert session.put(f"{emulator.url}/v1/odata/Relationship_Person_Contact_Standard"
                       f"({contact})", json={"IsFormer": True}).status_code == 200


def test_the_settings_endpoint_sets_the_switch(emulator):
    session = emulator.api_session()
    answer = session.post(f"{emulator.url}/_emulator/settings",
                          json={"person_former_field": None}).json()
    assert answer["person_former_field"] is None and "IsFormer" not in person_properties(emulator)
    session.post(f"{emulator.url}/_emulator/settings", json={"person_former_field": "IsFormer"})
    assert person_properties(emulator)["IsFormer"] == "Edm.Boolean"
    assert all(p["IsFormer"] is False for p in emulator.persons())


def test_a_property_the_type_lacks_is_refused_on_write(emulator):
    session, base = emulator.api_session(), f"{emulator.url}{PERSONS}"
    pid = emulator.persons()[1]["ID"]
    for body in ({"Nope": 1}, {"CustomerType": "A"}):  # CustomerType is the contact's
        r = session.put(f"{base}({pid})", json=body)
        assert r.status_code == 400 and next(iter(body)) in r.text, r.text
    assert session.post(base, json={"LastName": "X", "Nope": 1}).status_code == 400


def test_mutate_marks_persons_former_through_the_api():
    emulator = TribeEmulator(seed=1).start()
    try:
        emulator.seed(20, seed=1)
        rng = random.Random(5)
        lines = [emulator.mutate(rng) for _ in range(40)]
        changed = [line for line in lines if "IsFormer" in line]
        assert changed, lines
        assert any(p["IsFormer"] for p in emulator.persons())
        emulator.person_former_field = None
        assert not any("IsFormer" in emulator.mutate(rng) for _ in range(40))
    finally:
        emulator.stop()


# -- syncing a former person -----------------------------------------------------------------


def test_a_person_marked_former_stops_matching_a_condition_on_it_and_keeps_its_profile(
        tmp_path, emulator, memory_world, actors):
    world_name, world = memory_world
    store = Store(str(tmp_path / "syncd.db"))
    refs = {"crm": ConnectionActor.start(TribeConnector("crm", {
                **TribeConnector.sandbox_config(emulator), "requests_per_second": 0.0})),
            "dst": ConnectionActor.start(MemoryConnector("dst", {"world": world_name}))}
    integration = IntegrationConfig("i", "crm", "dst", max_attempts=1,
                                    conditions=(Condition("IsFormer", "false"),),
                                    fields={"FirstName": "firstname"})
    coordinator = Coordinator.start(
        integration, Rules.from_integration(integration), store, lambda n: refs[n].proxy(),
        progress=Progress(), capabilities={"source": TribeConnector.capabilities,
                                           "destination": MemoryConnector.capabilities}
    ).proxy()
    pid = emulator.persons()[1]["ID"]
    key = pid.lower()

    def event():
        store.enqueue([("i", "crm", Event(key))])
        coordinator.notify().get(timeout=5)
        assert wait_for(lambda: store.pending_count("i") == 0, 20)

    event()
    assert key in world.profiles
    session = emulator.api_session()
    session.put(f"{emulator.url}{PERSONS}({pid})",
                json={"IsFormer": True, "FirstName": "Gone"}).raise_for_status()
    event()
    assert key in world.profiles  # not deleted: it only stopped matching
    assert world.profiles[key]["firstname"] != "Gone"  # nor updated any more
    assert store.links("i", [key])[key] is not None
    session.put(f"{emulator.url}{PERSONS}({pid})", json={"IsFormer": False}
                ).raise_for_status()
    event()  # no longer former: it matches again, and is written
    assert world.profiles[key]["firstname"] == "Gone"
    coordinator.actor_ref.stop()
    store.close()


@pytest.mark.parametrize("name", ["IsFormer", None], ids=["has-IsFormer", "none"])
def test_preflight_checks_a_condition_on_the_persons_former_flag(emulator, make_connector,
                                                                    name):
    emulator.person_former_field = name
    key = 'integrations.demo.conditions."IsFormer"'
    problems = make_connector().check_schema(SchemaNeeds("source", (
        Need(NeedKind.FIELD, "IsFormer", key),)))
    assert [p.key for p in problems] == ([] if name else [key]), problems
