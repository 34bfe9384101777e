"""Full syncs and daily creation from the Tribe emulator through a real coordinator, a real
SQLite store and the in-memory destination: what the emulator's paging switches do to a run."""

from __future__ import annotations

import pytest
from syncd_tribe.connector import TribeConnector

from syncd.config.model import IntegrationConfig
from syncd.connectors.connection import ConnectionActor
from syncd.engine.coordinator import Coordinator, Progress
from syncd.engine.rules import Rules
from syncd.engine.store import Store
from syncd.records import Event
from syncd.testing import MemoryConnector, run_job_to_end, wait_for

pytestmark = pytest.mark.usefixtures("actors")


@pytest.fixture
def sync(tmp_path, emulator, memory_world):
    """``make(**integration) -> (coordinator proxy, progress)``; yields (make, store, world)."""
    world_name, world = memory_world
    store = Store(str(tmp_path / "syncd.db"))
    refs = {}

    def make(connection: dict | None = None, **kw):
        if "crm" not in refs:
            config = {**TribeConnector.sandbox_config(emulator), "requests_per_second": 0.0,
                      **(connection or {})}
            refs["crm"] = ConnectionActor.start(TribeConnector("crm", config))
            refs["dst"] = ConnectionActor.start(MemoryConnector("dst", {"world": world_name}))
        integration = IntegrationConfig("i", "crm", "dst", page_size=kw.pop("page_size", 200),
                                        **kw)
        caps = {"source": TribeConnector.capabilities,
                "destination": MemoryConnector.capabilities}
        progress = Progress()
        ref = Coordinator.start(integration, Rules.from_integration(integration), store,
                                lambda n: refs[n].proxy(), progress=progress,
                                capabilities=caps)
        return ref.proxy(), progress

    yield make, store, world
    store.close()


def run_to_end(store, coordinator) -> dict:
    run_id = coordinator.start_full_sync().get(timeout=10)
    assert wait_for(lambda: store.run(run_id)["status"] != "running", 60)
    return store.run(run_id)


def test_2000_persons_on_pages_capped_at_100_without_next_link_all_arrive(emulator, sync):
    """Issue 7.1 as seen: $top=200 answered with 100 rows and no nextLink; the run went on
    to the end (one extra request: the final empty page) and is completed."""
    make, store, world = sync
    emulator.seed(2000, seed=5)
    emulator.server_paging, emulator.next_links = 100, False
    persons = len(emulator.persons())
    coordinator, _ = make(fields={"FirstName": "firstname"}, bulk_threshold=0)
    run = run_to_end(store, coordinator)
    assert run["status"] == "completed", run["error"]
    assert run["processed"] == run["total"] == persons >= 2000
    assert len(world.profiles) == persons


def test_a_listing_that_ends_before_its_count_is_not_completed(emulator, sync):
    make, store, _ = sync
    emulator.server_paging, emulator.next_links, emulator.result_window = 7, False, 40
    coordinator, progress = make(fields={"FirstName": "firstname"})
    run = run_to_end(store, coordinator)
    assert run["status"] == "incomplete"
    assert run["processed"] == 40 and run["total"] == 61
    assert "processed 40 of the 61 records" in run["error"]
    assert progress.last_error == run["error"]


def test_a_server_ignoring_skip_fails_the_run_with_a_clear_error(emulator, sync):
    make, store, world = sync
    emulator.server_paging, emulator.ignore_skip = 7, True
    coordinator, _ = make(fields={"FirstName": "firstname"})
    before = emulator.stats()["requests"]
    run = run_to_end(store, coordinator)
    assert run["status"] == "failed"
    assert "ignores $skip" in run["error"]
    assert run["processed"] == 7  # the first page, once
    assert emulator.stats()["requests"] - before < 12  # bounded: token, 2 pages, contacts


def test_daily_creation_that_ends_before_its_count_is_incomplete(emulator, sync):
    make, store, _ = sync
    emulator.server_paging, emulator.next_links, emulator.result_window = 7, False, 20
    coordinator, _ = make(fields={"FirstName": "firstname"})
    run_job_to_end(coordinator, "daily_creation", {"overlap": 10 ** 9})
    run = store.latest_run("i", "daily_creation")
    assert run["status"] == "incomplete" and "processed 20 of the 61" in run["error"]
    assert store.cursor("i", "daily_creation") is None  # the window is read again next time


def test_a_person_a_listing_leaves_out_is_read_directly_and_kept(emulator, sync):
    """delete_unmatched with a server that ends listings early (``result_window``): the
    webhook read-back finds one of five persons, the other four look deleted; a direct read
    of each (``Person(<id>)``) finds them, so no profile is deleted. A person really gone
    (404 on the direct read) is."""
    make, store, world = sync
    coordinator, _ = make(delete_unmatched=True)
    assert run_to_end(store, coordinator)["status"] == "completed"
    before = len(world.profiles)
    ids = sorted(world.profiles)[:5]
    emulator.result_window = 1
    store.enqueue([("i", "crm", Event(i)) for i in ids])
    coordinator.notify().get(timeout=5)
    assert wait_for(lambda: store.pending_count("i") == 0, 30)
    assert len(world.profiles) == before and all(i in world.profiles for i in ids)
    with emulator.lock:
        emulator.store.remove(ids[2])
    store.enqueue([("i", "crm", Event(ids[2]))])
    coordinator.notify().get(timeout=5)
    assert wait_for(lambda: ids[2] not in world.profiles, 30)
    assert len(world.profiles) == before - 1
