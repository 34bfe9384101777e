"""Issue 8.1: missing or malformed label data is an error for that record, never "no labels"
(which would opt out everyone who had the label). Against the Tribe emulator; the syncs run
through a real coordinator, a real SQLite store and the in-memory destination."""

from __future__ import annotations

import pytest
from syncd_tribe.connector import TribeConnector

from syncd.config.model import ConsentMapping, IntegrationConfig
from syncd.connectors.connection import ConnectionActor
from syncd.engine.coordinator import Coordinator, Progress
from syncd.engine.rules import Rules
from syncd.engine.store import Store
from syncd.records import Event
from syncd.testing import MemoryConnector, wait_for

TOPIC = "com.apsis1.topics.newsletter"


def labelled(emulator, label="Newsletter") -> str:
    return next(p["ID"] for p in emulator.persons()
                if label in {lab["Name"] for lab in p["Labels"]})


@pytest.mark.parametrize("omitted, link_nav, reason", [
    (["LabelAssignments"], "Label", "'LabelAssignments' (labels_nav) is missing"),
    (["Label"], "Label", "came without its label 'Label'"),
    (["Labels"], "", "'Labels' (labels_nav) is missing"),
])
def test_a_person_without_its_label_data_is_an_error_not_no_labels(
        emulator, make_connector, omitted, link_nav, reason):
    options = {"label_link_label_nav": link_nav}
    if not link_nav:
        options["labels_nav"] = "Labels"
    connector = make_connector(**options)
    pid = labelled(emulator)
    [good] = connector.read_records([Event(pid)])
    assert "Newsletter" in good.labels and good.error is None
    emulator.omit_navs = omitted
    [bad] = connector.read_records([Event(pid)])
    assert bad.error is not None and reason in bad.error and "fix:" in bad.error
    page = connector.read_page(None, 100)
    emulator.omit_navs = []
    has_labels = {p["ID"] for p in emulator.persons() if p["Labels"]}
    assert has_labels and has_labels <= {r.id for r in page.records if r.error}
    assert not any(r.labels for r in page.records)


def test_a_label_without_its_name_is_an_error(emulator, connector):
    pid = labelled(emulator)
    label = next(lab for lab in emulator.labels() if lab["Name"] == "Newsletter")
    with emulator.lock:
        emulator.store.entities[label["ID"]]["Name"] = None
    [record] = connector.read_records([Event(pid)])
    assert record.error and "came without its Name" in record.error


def test_write_consents_changes_nothing_when_the_labels_cannot_be_read(emulator,
                                                                        make_connector):
    """Without label links, a person read without labels would have its whole label list
    replaced by the one label written: every other label gone."""
    connector = make_connector(labels_nav="Labels", label_link_label_nav="")
    pid = labelled(emulator)
    before = {lab["Name"] for lab in emulator.person(pid)["Labels"]}
    emulator.omit_navs = ["Labels"]
    result = connector.write_consents(pid, {"Events": True, "Newsletter": False})
    assert result.outcome == "failed" and result.retryable
    assert "'Labels' (labels_nav) is missing" in result.reason
    emulator.omit_navs = []
    assert {lab["Name"] for lab in emulator.person(pid)["Labels"]} == before


@pytest.fixture
def consent_sync(tmp_path, emulator, memory_world):
    world_name, world = memory_world
    store = Store(str(tmp_path / "syncd.db"))
    config = {**TribeConnector.sandbox_config(emulator), "requests_per_second": 0.0}
    refs = {"crm": ConnectionActor.start(TribeConnector("crm", config)),
            "dst": ConnectionActor.start(MemoryConnector("dst", {"world": world_name}))}
    integration = IntegrationConfig(
        "i", "crm", "dst", page_size=25, max_attempts=3,
        fields={"FirstName": "firstname"},
        consents=(ConsentMapping("Newsletter", TOPIC, "email"),), selections={"Events": "ev"})
    ref = Coordinator.start(integration, Rules.from_integration(integration), store,
                            lambda n: refs[n].proxy(), progress=Progress(),
                            capabilities={"source": TribeConnector.capabilities,
                                          "destination": MemoryConnector.capabilities})
    yield ref.proxy(), store, world
    store.close()


@pytest.mark.usefixtures("actors")
def test_opted_in_profiles_are_not_opted_out_when_labels_go_missing(emulator, consent_sync):
    coordinator, store, world = consent_sync
    run_id = coordinator.start_full_sync().get(timeout=10)
    assert wait_for(lambda: store.run(run_id)["status"] != "running", 60)
    assert store.run(run_id)["status"] == "completed"
    opted_in = {k for k, c in world.consents.items() if c.get((TOPIC, "email"))}
    tagged = {k for k, t in world.tags.items() if t.get("ev")}
    assert opted_in and tagged
    writes = world.writes

    # the account now serves persons without their label data (full sync and webhooks)
    emulator.omit_navs = ["LabelAssignments"]
    run_id = coordinator.start_full_sync().get(timeout=10)
    assert wait_for(lambda: store.run(run_id)["status"] != "running", 60)
    run = store.run(run_id)
    assert run["failed"] == run["processed"] == len(emulator.persons())
    errors = store.run_errors(run_id)
    assert all(e["retryable"] and "'LabelAssignments' (labels_nav) is missing" in e["reason"]
               for e in errors)
    pid = sorted(opted_in)[0]
    store.enqueue([("i", "crm", Event(pid))])
    coordinator.notify()
    assert wait_for(lambda: store.pending_count("i") == 0
                    or store.dead_letters("i") != [], 30)
    assert world.writes == writes  # nothing written: no opt-out, no untag
    assert {k for k, c in world.consents.items() if c.get((TOPIC, "email"))} == opted_in
    assert {k for k, t in world.tags.items() if t.get("ev")} == tagged


CONFIG = """
[daemon]
state_dir = "{state}"

[connections.crm]
kind = "tribe"
client_id = "x"
client_secret = "s"
labels_nav = "{labels_nav}"

[connections.marketing]
kind = "apsis"
client_id = "x"
client_secret = "s"
keyspace = "com.apsis1.keyspaces.email"
section = "com.apsis1.sections.main"

[integrations.crm-apsis]
source = "crm"
destination = "marketing"
fields = {{ FirstName = "firstname" }}
{mappings}
"""


@pytest.mark.parametrize("mappings, refused", [
    ('consents = [{ label = "Newsletter", topic = "t", channel = "email" }]', True),
    ('selections = { Events = "events" }', True),
    ("", False),
])
def test_labels_nav_empty_with_consent_or_selection_mappings_is_a_config_error(
        tmp_path, mappings, refused):
    import syncd.connectors.plugins
    from syncd.config import load
    from syncd.exceptions import ConfigErrors

    registry = syncd.connectors.plugins.load()
    path = tmp_path / "syncd.toml"
    path.write_text(CONFIG.format(state=tmp_path, labels_nav="", mappings=mappings))
    if not refused:
        assert load(str(path), registry).connections["crm"].options["labels_nav"] == ""
        return
    with pytest.raises(ConfigErrors) as caught:
        load(str(path), registry)
    [error] = caught.value.errors
    assert error.key == "connections.crm.labels_nav"
    assert "opts everyone out" in error.message and "set labels_nav" in error.fix
    path.write_text(CONFIG.format(state=tmp_path, labels_nav="Labels", mappings=mappings))
    assert load(str(path), registry).connections["crm"].options["labels_nav"] == "Labels"
