"""Fail-fast against the APSIS One emulator, with real actors and a real SQLite file: a run
whose first writes all fail alike stops after the probe (20 writes) with one error naming the
status, the endpoint template, APSIS' message and the fix; the real-time path pauses and
keeps its events. The source is the in-memory connector."""

import pykka
import pytest
import syncd_apsis.client
from syncd_apsis.connector import ApsisConnector

from syncd.config.model import IntegrationConfig
from syncd.connectors.connection import ConnectionActor
from syncd.engine.coordinator import Coordinator, Progress
from syncd.engine.rules import Rules
from syncd.engine.store import Store
from syncd.records import Event, Record
from syncd.testing import MemoryConnector, wait_for

pytestmark = pytest.mark.usefixtures("actors")
V1 = "/audience/keyspaces/{keyspace}/profiles/{key}/sections/{section}/attributes"


@pytest.fixture
def world_and(tmp_path, memory_world, emu):
    world_name, world = memory_world
    store = Store(str(tmp_path / "syncd.db"))
    refs = {}

    def make(section=None, **kw):
        config = {**ApsisConnector.sandbox_config(emu), "backoff": 0.02}
        config.pop("kind")
        if section:
            config["section"] = section
        refs["src"] = ConnectionActor.start(MemoryConnector("src", {"world": world_name}))
        refs["dst"] = ConnectionActor.start(ApsisConnector("dst", config))
        integration = IntegrationConfig("i", "src", "dst", page_size=200, batch_size=100,
                                        fields={"FirstName": "firstname"}, **kw)
        rules = Rules.from_integration(integration, ApsisConnector.canonical_attribute)
        progress = Progress()
        caps = {"source": MemoryConnector.capabilities,
                "destination": ApsisConnector.capabilities}
        ref = Coordinator.start(integration, rules, store, lambda n: refs[n].proxy(),
                                progress=progress, capabilities=caps)
        return ref.proxy(), progress, integration, rules

    yield world, store, make
    pykka.ActorRegistry.stop_all(block=True, timeout=10)
    store.close()


def seed(world, n):
    for i in range(n):
        world.put(Record(f"p{i:04d}", fields={"FirstName": f"n{i}"}, email=f"p{i}@example.nl"))


def wait_run(store, run_id, timeout=60):
    assert wait_for(lambda: store.run(run_id)["status"] != "running", timeout)
    return store.run(run_id)


def v1_patches(emu):
    return [s for _, m, p, s in list(emu.requests)
            if m == "PATCH" and p.endswith("/attributes") and not p.startswith("/v2/")]


@pytest.fixture
def json_not_merge_patch(monkeypatch):
    """The bug of issue 7 point 3: merge patches sent as application/json (415 from APSIS)."""
    monkeypatch.setattr(syncd_apsis.client, "MERGE_PATCH", "application/json")


def test_a_full_sync_whose_first_writes_all_get_415_stops_after_20(emu, world_and,
                                                                   json_not_merge_patch):
    world, store, make = world_and
    seed(world, 1000)
    coord, progress, _, _ = make()
    run = wait_run(store, coord.start_full_sync().get(timeout=5))
    assert run["status"] == "failed"
    error = run["error"]
    assert error.startswith("stopped: the first 20 writes all failed with 415 "
                            "Unsupported Media Type at PATCH " + V1)
    assert "Content-Type must be application/merge-patch+json" in error  # APSIS' own words
    assert "(fix: the partner refused the media type (Content-Type)" in error
    assert "p00" not in error and "example.nl" not in error  # no key in the endpoint
    patches = v1_patches(emu)
    assert len(patches) == 20 and set(patches) == {415}  # not 1,000 one by one
    assert emu.snapshot() == {}
    assert progress.last_error == error


def test_a_missing_section_stops_the_run_with_the_fix(emu, world_and):
    world, store, make = world_and
    seed(world, 300)
    coord, _, _, _ = make(section="com.apsis1.sections.nope")
    run = wait_run(store, coord.start_full_sync().get(timeout=5))
    assert run["status"] == "failed"
    assert "failed with 404 Not Found at GET /audience/sections/{section}/attributes" \
        in run["error"]
    assert "section com.apsis1.sections.nope not found" in run["error"]
    assert "check `section` (now 'com.apsis1.sections.nope')" in run["error"]
    assert emu.stats()["requests"] < 30


def test_mixed_first_writes_do_not_stop_the_run(emu, world_and):
    world, store, make = world_and
    seed(world, 60)
    coord, _, _, _ = make()
    coord.ping().get(timeout=5)
    emu.set_faults(fail_next=[400] * 5)  # the first five writes refused, then all is well
    run = wait_run(store, coord.start_full_sync().get(timeout=5))
    assert run["status"] == "completed"
    assert (run["created"], run["failed"]) == (55, 5)


def test_the_realtime_path_pauses_keeps_its_events_and_resumes(emu, world_and, monkeypatch):
    world, store, make = world_and
    seed(world, 100)
    monkeypatch.setattr(syncd_apsis.client, "MERGE_PATCH", "application/json")
    coord, progress, integration, rules = make()
    store.enqueue([("i", "src", Event(f"p{i:04d}")) for i in range(100)])
    coord.notify()
    assert wait_for(lambda: progress.paused is not None)
    assert progress.paused.startswith("stopped: the first 20 writes all failed with 415")
    assert progress.last_error == progress.paused
    assert len(v1_patches(emu)) == 20
    assert store.pending_count("i") == 100  # kept, not dead-lettered
    assert store.dead_letters("i") == []
    assert {item.attempts for item in store.pending("i", limit=200)} == {0}
    store.enqueue([("i", "src", Event("p0000"))])  # more events wait too
    coord.notify()
    coord.ping().get(timeout=5)
    assert len(v1_patches(emu)) == 20
    monkeypatch.undo()  # the fix (an upgrade), then a reload
    coord.set_rules(rules, integration).get(timeout=5)
    assert wait_for(lambda: store.pending_count("i") == 0, timeout=60)
    assert progress.paused is None
    assert len(emu.snapshot()) == 100
    assert store.dead_letters("i") == []
