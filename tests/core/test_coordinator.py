"""The coordinator with real actors, a real SQLite file and the in-memory connector."""

import threading
import time

import pykka
import pytest

from syncd.config.model import Condition, IntegrationConfig
from syncd.connectors.connection import ConnectionActor
from syncd.engine.coordinator import Coordinator, Progress
from syncd.engine.rules import Rules
from syncd.engine.store import Store
from syncd.records import Event, Record
from syncd.testing import MemoryConnector, run_job_to_end, wait_for

pytestmark = pytest.mark.usefixtures("actors")



@pytest.fixture
def setup(tmp_path, memory_world):
    world_name, world = memory_world
    store = Store(str(tmp_path / "syncd.db"))
    refs = {
        "src": ConnectionActor.start(MemoryConnector("src", {"world": world_name})),
        "dst": ConnectionActor.start(MemoryConnector("dst", {"world": world_name})),
    }

    def make(**kw):
        integration = IntegrationConfig("i", "src", "dst", page_size=kw.pop("page_size", 10),
                                        batch_size=kw.pop("batch_size", 50), **kw)
        rules = Rules.from_integration(integration)
        progress = Progress()
        caps = {"source": MemoryConnector.capabilities,
                "destination": MemoryConnector.capabilities}
        ref = Coordinator.start(integration, rules, store, lambda n: refs[n].proxy(),
                                progress=progress, capabilities=caps)
        return ref.proxy(), progress

    yield world, store, make
    pykka.ActorRegistry.stop_all(block=True, timeout=10)  # no actor uses a closed store
    store.close()


def seed(world, n, **fields):
    for i in range(n):
        world.put(Record(f"p{i:04d}", fields={"FirstName": f"n{i}", **fields},
                         email=f"p{i}@example.nl"))


def wait_run(store, run_id, timeout=20):
    assert wait_for(lambda: store.run(run_id)["status"] != "running", timeout)
    return store.run(run_id)


def test_full_sync_creates_then_leaves_unchanged(setup):
    world, store, make = setup
    seed(world, 35)
    coord, _ = make(fields={"FirstName": "firstname"})
    run = wait_run(store, coord.start_full_sync().get(timeout=5))
    assert run["status"] == "completed"
    assert (run["processed"], run["created"], run["total"]) == (35, 35, 35)
    assert world.profiles["p0003"] == {"email": "p3@example.nl", "crm_id": "p0003",
                                       "firstname": "n3"}
    world.update("p0003", FirstName="changed")
    run = wait_run(store, coord.start_full_sync().get(timeout=5))
    assert (run["updated"], run["unchanged"]) == (1, 34)
    assert world.profiles["p0003"]["firstname"] == "changed"


def test_conditions_skip_and_failures_are_recorded_per_record(setup):
    world, store, make = setup
    seed(world, 10, CustomerType="A")
    world.update("p0001", CustomerType="B")
    world.fail_keys["p0002"] = "invalid e-mail address"
    coord, _ = make(conditions=(Condition("CustomerType", "A"),))
    run = wait_run(store, coord.start_full_sync().get(timeout=5))
    assert (run["created"], run["skipped"], run["failed"]) == (8, 1, 1)
    assert store.run_errors(run["id"]) == [
        {"record_id": "p0002", "reason": "invalid e-mail address", "retryable": 0,
         "at": store.run_errors(run["id"])[0]["at"]}]
    assert "p0001" not in world.profiles


def test_cancel_stops_a_running_full_sync(setup):
    world, store, make = setup
    seed(world, 100)
    world.page_gate = threading.Event()  # hold the sync after its first page
    coord, progress = make(page_size=10)
    run_id = coord.start_full_sync().get(timeout=5)
    assert wait_for(lambda: world.pages_read >= 1)
    assert progress.request_cancel() == run_id  # works while the actor waits for a page
    world.page_gate.set()
    run = wait_run(store, run_id)
    assert run["status"] == "cancelled"
    assert run["processed"] < 100
    assert len(world.profiles) < 100


def test_events_during_a_full_sync_are_held_and_applied_after(setup):
    world, store, make = setup
    seed(world, 50)
    world.page_gate = threading.Event()
    coord, _ = make(page_size=10, fields={"FirstName": "firstname"})
    run_id = coord.start_full_sync().get(timeout=5)
    assert wait_for(lambda: world.pages_read >= 1)
    # every write of the two changes notes the run's status at that moment
    seen: list[tuple[str, str]] = []
    world.before_write = lambda profiles: seen.extend(
        (p.key, store.run(run_id)["status"]) for p in profiles
        if p.attributes.get("firstname") in ("during", "brand new"))
    # a change arrives while the sync is held mid-way
    world.update("p0001", FirstName="during")
    world.put(Record("new", fields={"FirstName": "brand new"}, email="new@example.nl"))
    store.enqueue([("i", "src", Event("p0001")), ("i", "src", Event("new"))])
    coord.notify()
    world.page_gate.set()
    wait_run(store, run_id)
    assert wait_for(lambda: store.pending_count("i") == 0)
    assert world.profiles["new"]["email"] == "new@example.nl"
    assert world.profiles["p0001"]["firstname"] == "during"
    # held during the full sync: applied only once it had ended
    assert sorted(seen) == [("new", "completed"), ("p0001", "completed")], seen


def test_realtime_event_is_applied_and_failures_become_dead_letters(setup):
    world, store, make = setup
    seed(world, 3)
    world.fail_keys["p0002"] = "rejected by the destination"
    coord, _ = make(max_attempts=2)
    store.enqueue([("i", "src", Event("p0001")), ("i", "src", Event("p0002"))])
    coord.notify()
    assert wait_for(lambda: store.pending_count("i") == 0)
    assert "p0001" in world.profiles
    dead = store.dead_letters("i")
    assert [d.event.record_id for d in dead] == ["p0002"]
    assert dead[0].last_error == "rejected by the destination"


def test_daily_creation_creates_what_webhooks_missed_and_moves_its_cursor(setup):
    world, store, make = setup
    seed(world, 5)  # old records: no modified_at, outside any window
    coord, progress = make()
    world.put(Record("fresh", fields={"FirstName": "new"}, email="fresh@x.nl",
                     modified_at="2999-01-01T00:00:00Z"))
    before = time.time()
    run_job_to_end(coord, "daily_creation", {"overlap": 3600})
    run = store.runs("i")[0]
    assert (run["kind"], run["status"], run["created"]) == ("daily_creation", "completed", 1)
    assert set(world.profiles) == {"fresh"}
    assert before <= float(store.cursor("i", "daily_creation")) <= time.time()
    # the next window overlaps: the same record again is an upsert, not a duplicate
    run_job_to_end(coord, "daily_creation", {"overlap": 3600})
    assert store.runs("i")[0]["unchanged"] == 1 and len(world.profiles) == 1


def fresh(world, n):
    for i in range(n):
        world.put(Record(f"f{i:02d}", fields={"FirstName": f"n{i}"}, email=f"f{i}@x.nl",
                         modified_at="2999-01-01T00:00:00Z"))


def test_a_long_daily_creation_answers_a_ping_between_its_pages(setup):
    world, store, make = setup
    fresh(world, 5)
    world.page_gate = threading.Event()  # every page after the first waits for it
    coord, progress = make(page_size=2)
    try:
        coord.run_job("daily_creation", {"overlap": 3600}).get(timeout=5)
        # the first page is a message queued before this ping; the second one after it
        assert coord.ping().get(timeout=5) == "i"
        run = store.latest_run("i", "daily_creation")
        assert run["status"] == "running" and len(world.profiles) == 2
    finally:
        world.page_gate.set()
    assert wait_run(store, run["id"])["status"] == "completed"
    assert len(world.profiles) == 5 and not coord.job_running().get(timeout=5)


def test_a_full_sync_started_between_pages_cancels_the_daily_creation(setup):
    world, store, make = setup
    fresh(world, 5)
    world.page_gate = threading.Event()
    coord, progress = make(page_size=2)
    try:
        coord.run_job("daily_creation", {"overlap": 3600}).get(timeout=5)
        full = coord.start_full_sync().get(timeout=5)  # answered between pages
        daily = store.latest_run("i", "daily_creation")
    finally:
        world.page_gate.set()
    assert wait_run(store, daily["id"])["status"] == "cancelled"
    assert store.cursor("i", "daily_creation") is None  # read again next time
    assert wait_run(store, full)["status"] == "completed" and len(world.profiles) == 5


def test_paged_jobs_run_one_at_a_time_in_turn(setup):
    world, store, make = setup
    fresh(world, 5)
    world.groups["G"] = {"f00", "f01"}
    coord, progress = make(page_size=2)
    coord.run_job("daily_creation", {"overlap": 3600}).get(timeout=5)
    run_job_to_end(coord, "overview", {"overview": "G", "tag": "g"})
    runs = {r["kind"]: r for r in store.runs("i")}
    assert runs["daily_creation"]["status"] == runs["overview:G"]["status"] == "completed"
    assert runs["daily_creation"]["ended_at"] <= runs["overview:G"]["started_at"]
    assert {k for k, t in world.tags.items() if t.get("g")} == {"f00", "f01"}


def test_an_unknown_job_is_reported_not_fatal(setup):
    world, store, make = setup
    coord, progress = make()
    coord.run_job("nonsense", {}).get(timeout=5)
    assert "not supported" in progress.last_error
    assert coord.ping().get(timeout=5) == "i"


def test_overview_import_tags_members_and_untags_who_left(setup):
    world, store, make = setup
    seed(world, 6, CustomerType="A")
    world.update("p0005", CustomerType="B")  # never matches: no profile to tag
    coord, _ = make(conditions=(Condition("CustomerType", "A"),))
    wait_run(store, coord.start_full_sync().get(timeout=5))
    world.groups["Hot leads"] = {"p0001", "p0002", "p0005"}
    run_job_to_end(coord, "overview", {"overview": "Hot leads", "tag": "hot"})
    assert {k for k, t in world.tags.items() if t.get("hot")} == {"p0001", "p0002"}
    assert store.runs("i")[0]["status"] == "completed"
    world.groups["Hot leads"] = {"p0002", "p0003"}  # p0001 left, p0003 joined
    run_job_to_end(coord, "overview", {"overview": "Hot leads", "tag": "hot"})
    assert {k for k, t in world.tags.items() if t.get("hot")} == {"p0002", "p0003"}
    assert world.tags["p0001"]["hot"] is False


def test_a_large_full_sync_writes_through_bulk_imports(setup):
    world, store, make = setup
    seed(world, 95)
    coord, progress = make(page_size=10, bulk_threshold=50, bulk_batch=30,
                           fields={"FirstName": "firstname"})
    run = wait_run(store, coord.start_full_sync().get(timeout=5))
    assert run["status"] == "completed" and run["created"] == 95
    assert world.bulk_calls == [30, 30, 30, 5]  # batches of pages, the rest at the end
    assert len(world.profiles) == 95 and progress.processed == 95
    world.update("p0003", FirstName="changed")
    run = wait_run(store, coord.start_full_sync().get(timeout=5))
    assert (run["updated"], run["unchanged"]) == (1, 94)


def test_a_small_full_sync_writes_profile_by_profile(setup):
    world, store, make = setup
    seed(world, 20)
    coord, _ = make(page_size=10, bulk_threshold=50)
    wait_run(store, coord.start_full_sync().get(timeout=5))
    assert world.bulk_calls == [] and len(world.profiles) == 20


def test_delete_unmatched_deletes_profiles_that_stop_matching(setup):
    world, store, make = setup
    seed(world, 4, CustomerType="A")
    coord, _ = make(conditions=(Condition("CustomerType", "A"),), delete_unmatched=True)
    wait_run(store, coord.start_full_sync().get(timeout=5))
    assert len(world.profiles) == 4
    world.update("p0001", CustomerType="B")
    run = wait_run(store, coord.start_full_sync().get(timeout=5))
    assert run["status"] == "completed"
    assert "p0001" not in world.profiles and len(world.profiles) == 3
    assert store.links("i", ["p0001"]) == {}


def test_deletes_beyond_the_confirm_share_wait_for_confirmation(setup):
    world, store, make = setup
    seed(world, 40, CustomerType="A")
    coord, _ = make(conditions=(Condition("CustomerType", "A"),), delete_unmatched=True,
                    confirm_share=0.1)
    wait_run(store, coord.start_full_sync().get(timeout=5))
    for i in range(20):
        world.update(f"p{i:04d}", CustomerType="B")
    run = wait_run(store, coord.start_full_sync().get(timeout=5))
    assert run["status"] == "needs_confirmation" and len(world.profiles) > 20
    run = wait_run(store, coord.start_full_sync(confirm=True).get(timeout=5))
    assert run["status"] == "completed" and len(world.profiles) == 20


def test_a_write_whose_answer_was_lost_leaves_no_digest_to_call_a_change_back_unchanged(setup):
    """The destination applied a write whose answer never came (a lost answer, or a kill
    before the digest was saved): the link must not keep the digest of the write before, or
    the source's next change back to that state is taken as "unchanged" and never written."""
    world, store, make = setup

    def change(first_name):
        world.put(Record("p0", fields={"FirstName": first_name}, email="p0@example.nl"))
        store.enqueue([("i", "src", Event("p0"))])
        coord.notify()
        assert wait_for(lambda: store.pending_count("i") == 0)

    coord, _ = make(fields={"FirstName": "firstname"}, max_attempts=1)
    change("Maarten")
    assert world.profiles["p0"]["firstname"] == "Maarten"
    world.lose_answers.add("p0")
    change("Roos")
    assert world.profiles["p0"]["firstname"] == "Roos"  # applied, its answer lost
    assert [d.event.record_id for d in store.dead_letters("i")] == ["p0"]
    world.lose_answers.clear()
    change("Maarten")
    assert world.profiles["p0"]["firstname"] == "Maarten"
    assert store.links("i", ["p0"])["p0"].digest is not None  # saved with the answer
