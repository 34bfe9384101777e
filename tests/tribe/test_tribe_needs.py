"""Issue 7.2: the connector expands only what the integrations' rules need (``set_needs``):
labels only for consent and selection mappings, the contact's organisation only when a field
path reaches it. An account without the guessed label navigation then syncs fine, as long as
no rule uses labels; when one does, the read fails loudly (400) instead of guessing."""

from __future__ import annotations

import pytest
from syncd_tribe.connector import TribeConnector

from syncd.config.model import IntegrationConfig
from syncd.connectors.connection import ConnectionActor
from syncd.engine.coordinator import Coordinator, Progress
from syncd.engine.rules import Rules
from syncd.engine.store import Store
from syncd.exceptions import RemoteError
from syncd.records import Event, Need, NeedKind, SchemaNeeds
from syncd.testing import MemoryConnector, wait_for


def needs(*fields: str, labels: tuple[str, ...] = ()) -> SchemaNeeds:
    return SchemaNeeds("source", tuple(
        [Need(NeedKind.FIELD, f, f"integrations.i.fields.{f}") for f in fields]
        + [Need(NeedKind.LABEL, name, "integrations.i.consents[0].label") for name in labels]))


@pytest.fixture
def expands(emulator):
    """Every ($expand, status) of a Relation_Person or contact request the emulator answers."""
    seen: list[tuple[str, str, int]] = []
    emulator.observers.append(lambda request, status: seen.append(
        (request.path.rsplit("/", 1)[-1].split("(")[0], request.arg("$expand") or "", status)))
    return seen


def test_without_label_mappings_no_labels_are_expanded(emulator, make_connector, expands):
    emulator.label_navs = ["Labels"]  # the account has no LabelAssignments
    connector = make_connector()
    connector.set_needs(needs("FirstName", "Contact.CustomerType"))
    pages = []
    cursor = None
    while True:
        page = connector.read_page(cursor, 25)
        pages.append(page)
        cursor = page.cursor
        if cursor is None:
            break
    records = [r for p in pages for r in p.records]
    assert len(records) == len(emulator.persons())
    assert all(r.error is None and r.labels == frozenset() for r in records)
    pid = records[3].id
    [record] = connector.read_records([Event(pid)])
    assert record.fields["FirstName"] == emulator.person(pid)["FirstName"]
    assert all(status == 200 for *_, status in expands)
    assert not any("Label" in expand for _, expand, _ in expands)
    # no field path reaches the organisation: the contacts come without it
    contact_expands = {e for s, e, _ in expands if s.startswith("Relationship")}
    assert contact_expands == {"Person($select=ID)"}
    assert "Contact.CustomerType" in record.fields
    assert not any(k.startswith("Contact.Organization.") for k in record.fields)


def test_organisation_and_labels_are_expanded_when_the_rules_use_them(emulator, make_connector,
                                                                      expands):
    connector = make_connector()
    connector.set_needs(needs("Contact.Organization.Name", labels=("Newsletter",)))
    page = connector.read_page(None, 100)
    assert any(r.labels for r in page.records)
    assert any("Contact.Organization.Name" in r.fields for r in page.records)
    assert any(e.startswith("LabelAssignments(") for s, e, _ in expands
               if s == "Relation_Person")
    assert any("Relation" in e.split(",") for s, e, _ in expands if s.startswith("Relationship"))


def test_labels_used_on_an_account_without_the_navigation_fail_loudly(emulator,
                                                                      make_connector):
    emulator.label_navs = ["Labels"]
    connector = make_connector()
    connector.set_needs(needs("FirstName", labels=("Newsletter",)))
    with pytest.raises(RemoteError, match="400.*LabelAssignments"):
        connector.read_page(None, 25)
    with pytest.raises(RemoteError, match="400.*LabelAssignments"):
        connector.read_records([Event(emulator.persons()[0]["ID"])])


def test_without_needs_everything_is_read(emulator, connector, expands):
    """A connector nobody told what is needed (tests, tools) reads everything."""
    page = connector.read_page(None, 100)
    assert any(r.labels for r in page.records)
    assert any(s == "Relation_Person" and "LabelAssignments" in e for s, e, _ in expands)


@pytest.mark.usefixtures("actors")
def test_full_sync_and_webhooks_succeed_on_an_account_without_label_assignments(
        tmp_path, emulator, memory_world, expands):
    emulator.label_navs = ["Labels"]
    world_name, world = memory_world
    store = Store(str(tmp_path / "syncd.db"))
    connector = TribeConnector("crm", {**TribeConnector.sandbox_config(emulator),
                                       "requests_per_second": 0.0})
    connector.set_needs(needs("FirstName", "Contact.CustomerType"))
    refs = {"crm": ConnectionActor.start(connector),
            "dst": ConnectionActor.start(MemoryConnector("dst", {"world": world_name}))}
    integration = IntegrationConfig("i", "crm", "dst", page_size=25,
                                    fields={"FirstName": "firstname"})
    coordinator = Coordinator.start(
        integration, Rules.from_integration(integration), store, lambda n: refs[n].proxy(),
        progress=Progress(), capabilities={"source": TribeConnector.capabilities,
                                           "destination": MemoryConnector.capabilities}
    ).proxy()
    run_id = coordinator.start_full_sync().get(timeout=10)
    assert wait_for(lambda: store.run(run_id)["status"] != "running", 60)
    run = store.run(run_id)
    assert run["status"] == "completed", run["error"]
    assert run["created"] == len(emulator.persons())
    pid = emulator.persons()[5]["ID"]
    session = emulator.api_session()
    session.put(f"{emulator.url}/v1/odata/Relation_Person({pid})",
                json={"FirstName": "Renamed"}).raise_for_status()
    store.enqueue([("i", "crm", Event(pid))])  # as the receiver does for the webhook
    coordinator.notify()
    assert wait_for(lambda: world.profiles.get(pid, {}).get("firstname") == "Renamed", 20)
    assert store.pending_count("i") == 0 and store.dead_letters("i") == []
    assert all(status == 200 for *_, status in expands)
    store.close()
