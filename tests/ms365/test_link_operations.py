"""The Outlook link operated like an integration, through the core's general mechanisms
(``connector.links``: :mod:`syncd.engine.linkops`), against the Tribe emulator and the Graph
and identity emulators over TLS, with the link's real service thread and a real SQLite store:

- each round of a user's link is a run with counts per side (``syncd runs``);
- a round that would change more than ``confirm_share`` of a user's contacts at once writes
  nothing and holds that user's link until a person confirms (``syncd confirm``);
- the first ``fail_fast`` writes all refused alike (403: the mailbox permission revoked)
  stop that user's link with one error naming the status, the endpoint and the fix, while
  another user's link goes on;
- a field missing from Graph's answer is unknown: never written to Tribe as empty.
"""

from __future__ import annotations

import pytest
from syncd_ms365.connector import Ms365Connector
from syncd_tribe.connector import TribeConnector

from syncd.engine.linkops import LinkRegistry, Links
from syncd.engine.store import Store
from syncd.records import Event
from syncd.testing import wait_for
from tests.ms365.conftest import CLIENT_ID

ANNA, BOB = "anna@contoso.example", "bob@contoso.example"
CONTACTS = "Relationship_Person_Contact_Standard"


@pytest.fixture
def ops(world, tmp_path):
    """A started link service whose ``links`` are the core's, over a real store."""
    store = Store(str(tmp_path / "syncd.db"))
    registry = LinkRegistry(store)
    made = []

    def make(**overrides):
        options = {o.name: o.default for o in Ms365Connector.options}
        options.update(authority=world.identity.authority, client_id=CLIENT_ID,
                       ca_bundle=world.identity.ca_bundle,
                       graph_url=f"{world.graph_emu.url}/v1.0", tribe_connection="crm",
                       **{"poll_interval": 3600.0, "fail_fast": 3, **overrides})
        connector = Ms365Connector("outlook-ops", options)
        connector.state_dir = str(tmp_path / "ops")
        connector.peers = {"crm": ("tribe", TribeConnector.sandbox_config(world.tribe_emu))}
        connector.links = Links(registry, "outlook-ops")
        made.append(connector)
        return connector

    yield make, registry, store
    for connector in made:
        connector.stop()
    store.close()


def link(world, connector, *users):
    connector.start()
    for user in users:
        world.identity.login_as = user
        connector.accounts.authorize_device(user, lambda message: None)
    connector.service.wake.set()


def runs(store, name, kind=None):
    return [r for r in store.runs(name, 100) if kind is None or r["kind"] == kind]


def test_each_round_is_a_run_with_counts_per_side(world, ops):
    make, registry, store = ops
    world.employee(ANNA)
    keys = [world.contact(manager=ANNA, LastName=f"Run{i}") for i in range(3)]
    connector = make()
    link(world, connector, ANNA)
    name = "outlook-ops:" + ANNA
    assert wait_for(lambda: any(r["status"] == "completed" for r in runs(
        store, name, "initial_sync")), timeout=30)
    (first,) = runs(store, name, "initial_sync")
    assert (first["created"], first["failed"]) == (3, 0)
    assert store.run_counts(first["id"]) == {"outlook.created": 3}
    # an edit in Outlook, then a round: one Tribe person updated, counted on its side
    contact = world.outlook_by_key(ANNA)[keys[0]]
    world.patch_outlook(ANNA, contact["id"], {"jobTitle": "Counted"})
    connector.service.wake.set()
    assert wait_for(lambda: world.tribe(CONTACTS, keys[0])["Role"] == "Counted", timeout=30)

    def the_round():
        return [r for r in runs(store, name) if r["status"] == "completed"
                and store.run_counts(r["id"]).get("tribe.updated") == 1]

    assert wait_for(the_round, timeout=30)
    (latest,) = the_round()
    # woken (not the hour's poll): the mailbox's delta only, Tribe is not read again
    assert latest["kind"] == "notification" and latest["updated"] == 1
    assert store.run_counts(latest["id"]) == {"tribe.updated": 1}
    assert name in registry and registry.status()[name]["last_run"]["id"] >= latest["id"]


def test_a_round_changing_too_much_at_once_holds_until_a_person_confirms(world, ops):
    make, registry, store = ops
    world.employee(ANNA)
    keys = [world.contact(manager=ANNA, LastName=f"Held{i}", Role="Buyer")
            for i in range(12)]
    connector = make()
    link(world, connector, ANNA)
    name = "outlook-ops:" + ANNA
    assert wait_for(lambda: len(world.outlook_by_key(ANNA)) == 12, timeout=30)
    assert wait_for(lambda: runs(store, name) and runs(store, name)[0]["status"]
                    == "completed", timeout=30)
    for key in keys:  # an odd write in Tribe: every function emptied at once
        world.client.update(CONTACTS, key, {"Role": None})
    # Tribe's webhooks name them (the daemon routes them to the link: peer_events)
    connector.peer_events("crm", [Event(k) for k in keys])
    assert wait_for(lambda: registry.status()[name]["held_since"] is not None, timeout=30)
    held = runs(store, name)[0]
    assert held["status"] == "needs_confirmation" and "12 of 12 outlook" in held["error"]
    assert all(c["jobTitle"] == "Buyer" for c in world.outlook_by_key(ANNA).values())
    assert "syncd confirm " + name in connector.stats()["attention"][0]
    # the next rounds stay held: nothing is written
    connector.service.wake.set()
    assert wait_for(lambda: connector.service.rounds >= 3, timeout=30)
    assert all(c["jobTitle"] == "Buyer" for c in world.outlook_by_key(ANNA).values())
    registry.release(name, "confirm")  # syncd confirm outlook-ops:anna@...
    assert wait_for(lambda: all(not c.get("jobTitle") for c in world.outlook_by_key(
        ANNA).values()), timeout=30)
    assert registry.status()[name]["held_since"] is None
    assert wait_for(lambda: runs(store, name)[0]["status"] == "completed", timeout=30)


def test_the_first_writes_refused_alike_stop_that_user_only(world, ops):
    make, registry, store = ops
    world.employee(ANNA)
    world.employee(BOB)
    for i in range(4):
        world.contact(manager=ANNA, LastName=f"Anna{i}")
        world.contact(manager=BOB, LastName=f"Bob{i}")
    world.graph_emu.read_only = {ANNA}  # the app may no longer write Anna's contacts
    connector = make()
    link(world, connector, ANNA, BOB)
    anna, bob = "outlook-ops:" + ANNA, "outlook-ops:" + BOB
    assert wait_for(lambda: registry.status().get(anna, {}).get("stopped"), timeout=30)
    error = registry.status()[anna]["stopped"]
    assert "403" in error and "POST /me/contacts" in error and "Contacts.ReadWrite" in error
    assert f"syncd sync start {anna}" in error
    assert wait_for(lambda: len(world.outlook_by_key(BOB)) == 4, timeout=30)
    assert registry.status()[bob]["stopped"] is None
    stopped_run = runs(store, anna, "initial_sync")[0]
    assert stopped_run["status"] == "failed" and stopped_run["failed"] == 3
    assert stopped_run["error"] == error
    # the permission is granted again; a person starts the link: it creates them
    world.graph_emu.read_only = set()
    registry.release(anna, "start")
    assert wait_for(lambda: len(world.outlook_by_key(ANNA)) == 4, timeout=30)
    assert registry.status()[anna]["stopped"] is None


def test_a_field_missing_from_graphs_answer_is_never_written_to_tribe_as_empty(world, ops):
    make, registry, store = ops
    world.employee(ANNA)
    key = world.contact(manager=ANNA, LastName="Kept", Role="Buyer", FirstName="Ann")
    connector = make()
    link(world, connector, ANNA)
    assert wait_for(lambda: key in world.outlook_by_key(ANNA), timeout=30)
    name = "outlook-ops:" + ANNA
    assert wait_for(lambda: runs(store, name) and runs(store, name)[0]["status"]
                    == "completed", timeout=30)
    world.graph_emu.omit_fields = {"surname", "jobTitle"}  # an odd answer
    contact = world.outlook_by_key(ANNA)[key]
    world.patch_outlook(ANNA, contact["id"], {"givenName": "Anne"})
    connector.service.wake.set()
    person_id = world.people.get(key).person_id
    assert wait_for(lambda: world.tribe("Relation_Person", person_id)["FirstName"] == "Anne",
                    timeout=30)
    # surname and function were not in the answer: unknown, so Tribe keeps them
    assert world.tribe("Relation_Person", person_id)["LastName"] == "Kept"
    assert world.tribe(CONTACTS, key)["Role"] == "Buyer"
    assert wait_for(lambda: runs(store, name)[0]["status"] == "completed", timeout=30)
    assert all(r["failed"] == 0 for r in runs(store, name))


def test_a_field_missing_from_tribes_answer_is_unknown_not_empty():
    from syncd_tribe.people import TribePeople

    people = TribePeople(None, "Relation_Person", CONTACTS)  # type: ignore[arg-type]
    rel = people.from_contact({"ID": "c1", "Person": {"ID": "p1", "LastName": "Dijk",
                                                     "BirthDate": None},
                               "EmailAddress": "", "Role": "Buyer"})
    assert rel.fields == {"surname": "Dijk", "birthday": None, "email": "", "jobTitle": "Buyer"}
    rel = people.from_person({"ID": "p2", "FirstName": "Petra"})
    assert rel.fields == {"givenName": "Petra"}


def test_explain_shows_the_graph_and_tribe_calls_made_for_a_person(world, ops):
    from syncd.engine.explain import story

    make, registry, store = ops
    world.employee(ANNA)
    key = world.contact(manager=ANNA, LastName="Explained", Role="Buyer")
    other = world.contact(manager=ANNA, LastName="Other")
    connector = make()
    link(world, connector, ANNA)
    name = "outlook-ops:" + ANNA

    def answers(record):
        return [e["data"] for e in story(store, name, record)["entries"]
                if e["kind"] == "answer"]

    assert wait_for(lambda: any(a["request"] == "write to Outlook" for a in answers(key)),
                    timeout=30)
    (created,) = [a for a in answers(key) if a["request"] == "write to Outlook"]
    assert created["outcome"] == "created"
    assert [(c["method"], c["path"], c["status"]) for c in created["calls"]] == [
        ("POST", "/v1.0/$batch", 200)]  # the batch that created both: marked for both
    assert [c["path"] for a in answers(other) for c in a.get("calls", ())] == ["/v1.0/$batch"]
    # an Outlook edit: the contact read and the Tribe write, for this person only
    contact = world.outlook_by_key(ANNA)[key]
    world.patch_outlook(ANNA, contact["id"], {"jobTitle": "Explained Buyer"})
    connector.service.wake.set()
    assert wait_for(lambda: any(a["request"] == "write to Tribe" for a in answers(key)),
                    timeout=30)
    (wrote,) = [a for a in answers(key) if a["request"] == "write to Tribe"]
    calls = [(c["method"], c["path"].split("(")[0]) for c in wrote["calls"]]
    assert ("PUT", f"/v1/odata/{CONTACTS}") in calls and wrote["outcome"] == "updated"
    assert ("GET", f"/v1/odata/{CONTACTS}") in calls  # the relationship read for the compare
    assert not any(a["request"] == "write to Tribe" for a in answers(other))
    text = "\n".join(str(c) for a in answers(key) for c in a.get("calls", ()))
    assert "Bearer" not in text and "token" not in text.lower().replace("deltatoken=***", "")


def test_syncd_status_prints_a_held_and_a_stopped_link(world, ops):
    from rich.console import Console

    from syncd.app.cli_status import print_status

    _make, registry, _store = ops
    held, stopped = Links(registry, "outlook"), "outlook:bob@contoso.example"
    held.register("anna@contoso.example", lambda action: None)
    held.register("bob@contoso.example", lambda action: None)
    with held.run("anna@contoso.example", "poll") as run:
        run.count("outlook", "updated", 2)
    held.hold("anna@contoso.example", "12 of 12 outlook items would change", [])
    held.stop("bob@contoso.example", "stopped: the first 3 writes all failed with 403")
    console = Console(record=True, width=250)
    print_status({"pid": 1, "uptime": 1, "config": "c", "receiver": None, "ready": True,
                  "connections": {}, "integrations": {}, "links": registry.status()}, console)
    text = console.export_text()
    assert "HELD" in text and "STOPPED" in text
    assert "12 of 12 outlook items would change" in text
    assert "to let it go: syncd confirm outlook:anna@contoso.example" in text
    assert "once fixed: syncd sync start " + stopped in text
    assert "#1 poll completed" in text
