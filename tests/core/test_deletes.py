"""Deleting what stops matching (``delete_unmatched``) only after a direct read of the
record in the source confirms it: a record merely missing from a list answer is kept."""

import pykka
import pytest

from syncd.config.model import Condition, IntegrationConfig
from syncd.connectors.capabilities import Capability
from syncd.connectors.connection import ConnectionActor
from syncd.engine import rules as R
from syncd.engine.coordinator import Coordinator, Progress
from syncd.engine.store import Store
from syncd.exceptions import RemoteError
from syncd.records import Event, Record
from syncd.testing import MemoryConnector, wait_for

pytestmark = pytest.mark.usefixtures("actors")


@pytest.fixture
def setup(tmp_path, memory_world):
    world_name, world = memory_world
    store = Store(str(tmp_path / "syncd.db"))
    refs = {n: ConnectionActor.start(MemoryConnector(n, {"world": world_name}))
            for n in ("src", "dst")}
    for i in range(20):
        world.put(Record(f"p{i:02d}", fields={"CustomerType": "A"}, email=f"p{i}@x.nl"))

    def make(source_caps=MemoryConnector.capabilities):
        integration = IntegrationConfig("i", "src", "dst", page_size=10, delete_unmatched=True,
                                        conditions=(Condition("CustomerType", "A"),))
        caps = {"source": source_caps, "destination": MemoryConnector.capabilities}
        coord = Coordinator.start(integration, R.Rules.from_integration(integration), store,
                                  lambda n: refs[n].proxy(), progress=Progress(),
                                  capabilities=caps).proxy()
        run_id = coord.start_full_sync().get(timeout=5)
        assert wait_for(lambda: store.run(run_id)["status"] == "completed")
        assert len(world.profiles) == 20
        return coord

    def events(coord, ids):
        store.enqueue([("i", "src", Event(i)) for i in ids])
        coord.notify().get(timeout=5)
        assert wait_for(lambda: store.pending_count("i") == 0 or
                        all(it.attempts for it in store.pending("i", now=float("inf"))))

    yield world, store, make, events
    pykka.ActorRegistry.stop_all(block=True, timeout=10)
    store.close()


def test_a_person_missing_from_a_list_answer_is_not_deleted(setup):
    world, store, make, events = setup
    coord = make()
    world.unlisted = {"p03", "p04"}  # the list answers leave them out; they still exist
    events(coord, ["p03", "p04"])
    assert "p03" in world.profiles and "p04" in world.profiles
    assert set(store.links("i", ["p03", "p04"])) == {"p03", "p04"}
    assert sorted(world.direct_reads) == ["p03", "p04"]  # asked, and found


def test_a_person_the_source_no_longer_has_is_deleted(setup):
    world, store, make, events = setup
    coord = make()
    del world.records["p05"]  # a direct read answers "not found"
    world.unlisted = {"p06"}
    events(coord, ["p05", "p06"])
    assert "p05" not in world.profiles and store.links("i", ["p05"]) == {}
    assert "p06" in world.profiles


def test_a_record_that_stops_matching_is_deleted_after_the_direct_read_agrees(setup):
    world, store, make, events = setup
    coord = make()
    world.update("p07", CustomerType="B")
    events(coord, ["p07"])
    assert "p07" not in world.profiles and world.direct_reads == ["p07"]


def test_a_failed_direct_read_deletes_nothing_and_the_event_is_retried(setup, monkeypatch):
    world, store, make, events = setup
    coord = make()

    def broken(self, record_id):
        raise RemoteError("503 from the source", status=503, retryable=True)

    monkeypatch.setattr(MemoryConnector, "read_record", broken)
    del world.records["p08"]
    events(coord, ["p08"])
    assert "p08" in world.profiles
    (item,) = store.pending("i", now=float("inf"))
    assert item.attempts == 1 and "confirm the delete" in item.last_error


def test_a_source_that_cannot_read_one_record_deletes_nothing(setup):
    world, store, make, events = setup
    coord = make(MemoryConnector.capabilities - {Capability.READ_RECORD})
    del world.records["p09"]
    world.update("p10", CustomerType="B")
    events(coord, ["p09", "p10"])
    assert "p09" in world.profiles and "p10" in world.profiles


def test_a_full_sync_over_a_list_that_leaves_people_out_deletes_nobody(setup):
    world, store, make, events = setup
    coord = make()
    world.unlisted = {f"p{i:02d}" for i in range(0, 20, 2)}
    run_id = coord.start_full_sync().get(timeout=5)
    assert wait_for(lambda: store.run(run_id)["status"] != "running")
    events(coord, sorted(world.unlisted))  # and their webhooks read them as gone
    assert len(world.profiles) == 20


def test_a_direct_read_that_is_not_whole_deletes_nothing(setup, monkeypatch):
    world, store, make, events = setup
    coord = make()
    monkeypatch.setattr(MemoryConnector, "read_record",
                        lambda self, rid: Record(rid, error="label data missing"))
    world.update("p11", CustomerType="B")
    events(coord, ["p11"])
    assert "p11" in world.profiles
    (item,) = store.pending("i", now=float("inf"))
    assert "not whole" in item.last_error and "label data missing" in item.last_error
