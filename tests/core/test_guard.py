"""The stop-and-confirm guard on every write path, counted in the SQLite store across runs,
resumes and restarts: real coordinator actors, a real SQLite file, the memory connector."""

import datetime as dt
from dataclasses import replace

import pykka
import pytest

from syncd.config.model import ConsentMapping, IntegrationConfig
from syncd.connectors.connection import ConnectionActor
from syncd.engine import rules as R
from syncd.engine.coordinator import Coordinator, Progress
from syncd.engine.guard import guard_status
from syncd.engine.store import Store
from syncd.records import Event, Record
from syncd.testing import MemoryConnector, run_job_to_end, wait_for

pytestmark = pytest.mark.usefixtures("actors")

NEWS = ConsentMapping("Newsletter", "news", "email")
OLD = "2026-01-01T00:00:00+00:00"


class Harness:
    """A coordinator over a store file that can be stopped and started again (a restart)."""

    def __init__(self, path, world_name, world, **settings):
        self.path, self.world = path, world
        self.refs = {n: ConnectionActor.start(MemoryConnector(n, {"world": world_name}))
                     for n in ("src", "dst")}
        self.integration = IntegrationConfig(
            "i", "src", "dst", consents=(NEWS,), **{"page_size": 50, "batch_size": 100,
                                                    "confirm_share": 0.1, **settings})
        self.store = self.coord = self.ref = None
        self.start()

    def start(self):
        self.store = Store(self.path)
        self.progress = Progress()
        caps = {"source": MemoryConnector.capabilities,
                "destination": MemoryConnector.capabilities}
        self.ref = Coordinator.start(self.integration, R.Rules.from_integration(self.integration),
                                     self.store, lambda n: self.refs[n].proxy(),
                                     progress=self.progress, capabilities=caps)
        self.coord = self.ref.proxy()

    def restart(self):
        self.ref.stop(block=True)
        self.store.close()
        self.start()

    def full_sync(self, confirm=False):
        run_id = self.coord.start_full_sync(confirm=confirm).get(timeout=5)
        assert wait_for(lambda: self.store.run(run_id)["status"] != "running", 30)
        return self.store.run(run_id)

    def events(self, ids):
        self.store.enqueue([("i", "src", Event(i)) for i in ids])
        self.coord.notify().get(timeout=5)
        assert wait_for(lambda: self.store.pending_count("i") == 0, 30)

    def guard(self):
        return guard_status(self.store, self.integration)


def opted_out(world):
    return sum(1 for c in world.consents.values() if c.get(("news", "email")) is False)


@pytest.fixture
def make(tmp_path, memory_world):
    world_name, world = memory_world
    made = []

    def make(n, **settings):
        for i in range(n):
            world.put(Record(f"p{i:04d}", fields={"FirstName": "a"}, email=f"p{i}@x.nl",
                             modified_at="2026-01-01T00:00:00Z"))
            world.set_label(f"p{i:04d}", "Newsletter", True, at=OLD)
        h = Harness(str(tmp_path / "syncd.db"), world_name, world, **settings)
        made.append(h)
        assert h.full_sync()["created"] == n
        return h, world

    yield make
    pykka.ActorRegistry.stop_all(block=True, timeout=10)  # no actor uses a closed store
    for h in made:
        h.store.close()


def drop_labels(world, ids):
    for i in ids:
        world.set_label(f"p{i:04d}", "Newsletter", False)


def test_reruns_and_restarts_never_opt_out_more_than_the_share(make):
    """The issue's simulation at 1/10 scale: 1,000 profiles, each rerun (after a restart of
    the actor on the same SQLite file) finds 100 more opt-outs; the share is 10 %."""
    h, world = make(1000)
    assert h.guard()["limit"] == 100
    for rerun in range(5):
        drop_labels(world, range(rerun * 100, rerun * 100 + 100))
        run = h.full_sync()
        assert opted_out(world) == 100  # never more than the share, whatever the reruns
        assert run["status"] == ("completed" if rerun == 0 else "needs_confirmation")
        h.restart()
    guard = h.guard()
    assert guard["count"] == 100 and guard["held_since"] is not None
    assert guard["held"] == {"consent": 400}
    # a person confirms: the count starts again and what was held is applied
    result = h.coord.confirm().get(timeout=5)
    assert result["records"] == 400
    assert wait_for(lambda: opted_out(world) == 500, 30)
    assert h.guard()["count"] == 0 and h.guard()["held_since"] is None


def test_real_time_events_hold_consents_but_apply_other_updates(make):
    h, world = make(50, confirm_share=0.2, fields={"FirstName": "firstname"})  # limit 10
    for i in range(30):
        world.update(f"p{i:04d}", FirstName="b")
    drop_labels(world, range(30))
    h.events([f"p{i:04d}" for i in range(30)])
    assert opted_out(world) == 10
    assert all(world.profiles[f"p{i:04d}"]["firstname"] == "b" for i in range(30))
    guard = h.guard()
    assert (guard["count"], guard["limit"], guard["held"]) == (10, 10, {"consent": 20})
    assert "syncd confirm i" in guard["reason"] and guard["confirm"] == "syncd confirm i"
    # held, not lost: the next event of a held record derives the flip again, and holds it
    h.events(["p0029"])
    assert opted_out(world) == 10
    h.coord.confirm().get(timeout=5)
    assert wait_for(lambda: opted_out(world) == 30)


def test_attribute_updates_go_on_while_held(make):
    h, world = make(30, fields={"FirstName": "firstname"})
    drop_labels(world, range(25))
    h.events([f"p{i:04d}" for i in range(25)])
    assert opted_out(world) == 10
    world.update("p0020", FirstName="renamed")
    h.events(["p0020"])
    assert world.profiles["p0020"]["firstname"] == "renamed"
    assert world.consents["p0020"][("news", "email")] is True  # its opt-out still held


def test_daily_creation_is_guarded(make):
    h, world = make(40)
    drop_labels(world, range(30))
    for i in range(30):
        world.put(replace(world.records[f"p{i:04d}"], modified_at="2099-01-01T00:00:00Z"))
    run_job_to_end(h.coord, "daily_creation")
    assert opted_out(world) == 10
    assert h.guard()["held"] == {"consent": 20}


def test_overview_import_is_guarded(make):
    h, world = make(40)
    world.groups["VIPs"] = {f"p{i:04d}" for i in range(40)}
    drop_labels(world, range(30))
    run_job_to_end(h.coord, "overview", {"overview": "VIPs", "tag": "vip"})
    assert opted_out(world) == 10
    assert sum(1 for t in world.tags.values() if t.get("vip")) == 40  # tags still go


def test_write_backs_to_the_source_are_guarded(make):
    h, world = make(40)
    for i in range(25):
        world.unsubscribe(f"p{i:04d}", "news", at="2026-06-01T00:00:00+00:00")
    h.coord.run_job("consent_changes", {}).get(timeout=30)
    removed = [r for r in world.records.values() if "Newsletter" not in r.labels]
    assert len(removed) == 10  # the CRM lost no more labels than the share allows
    assert h.guard()["held"] == {"writeback": 15}
    h.coord.run_job("consent_changes", {}).get(timeout=30)  # the next poll still holds
    assert sum(1 for r in world.records.values() if "Newsletter" not in r.labels) == 10
    h.coord.confirm().get(timeout=5)
    h.coord.run_job("consent_changes", {}).get(timeout=30)
    assert sum(1 for r in world.records.values() if "Newsletter" not in r.labels) == 25


def test_the_hold_survives_a_restart_and_only_a_person_ends_it(make):
    h, world = make(40)
    drop_labels(world, range(20))
    h.events([f"p{i:04d}" for i in range(20)])
    assert opted_out(world) == 10
    h.restart()
    h.events([f"p{i:04d}" for i in range(10, 20)])
    h.full_sync()
    assert opted_out(world) == 10
    assert h.guard()["held_since"] is not None
    h.full_sync(confirm=True)  # `syncd sync start i --confirm`
    assert opted_out(world) == 20
    assert h.guard()["count"] == 0 and h.guard()["held_since"] is None


def test_deletes_are_held_past_the_share(make):
    h, world = make(40, delete_unmatched=True)
    for i in range(25):
        del world.records[f"p{i:04d}"]
    h.events([f"p{i:04d}" for i in range(25)])
    assert len(world.profiles) == 30  # 10 deleted, 15 held
    assert h.guard()["held"] == {"delete": 15}
    h.coord.confirm().get(timeout=5)
    assert wait_for(lambda: len(world.profiles) == 15)


def test_a_resumed_full_sync_counts_on(make):
    h, world = make(200, page_size=20)
    drop_labels(world, range(20))
    h.events([f"p{i:04d}" for i in range(20)])  # 20: the limit (10 % of 200)
    assert opted_out(world) == 20
    run_id = h.store.start_run("i", "full", cursor="100", total=200)
    h.store.progress_run(run_id, {"processed": 100}, cursor="100")
    h.restart()  # the run was interrupted; the daemon resumes it at its cursor
    (interrupted,) = h.store.interrupt_running()
    drop_labels(world, range(100, 140))
    resumed = h.coord.start_full_sync(interrupted).get(timeout=5)
    assert wait_for(lambda: h.store.run(resumed)["status"] != "running")
    assert h.store.run(resumed)["resumed_from"] == run_id
    assert h.store.run(resumed)["status"] == "needs_confirmation"
    assert opted_out(world) == 20
    assert h.guard()["held"] == {"consent": 40}


def test_guard_status_when_the_guard_is_off(make):
    h, world = make(12, confirm_share=1.0)
    drop_labels(world, range(12))
    h.events([f"p{i:04d}" for i in range(12)])
    assert opted_out(world) == 12 and h.guard()["limit"] is None


def test_a_stopped_actor_keeps_no_count_in_memory(make):
    """The count lives in the store: a new actor (and a new store object) sees it."""
    h, world = make(100)
    drop_labels(world, range(8))
    h.events([f"p{i:04d}" for i in range(8)])
    h.restart()
    assert h.guard()["count"] == 8
    drop_labels(world, range(8, 20))
    h.events([f"p{i:04d}" for i in range(8, 20)])
    assert opted_out(world) == 10


def test_the_window_forgets_old_changes(make, monkeypatch):
    h, world = make(50)
    drop_labels(world, range(10))
    h.events([f"p{i:04d}" for i in range(10)])
    assert h.guard()["count"] == 10
    later = dt.datetime.now().timestamp() + h.integration.confirm_window + 1
    assert h.store.guard_state("i", h.integration.confirm_window, now=later)["count"] == 0


def test_the_store_counts_in_the_window_and_only_a_confirm_ends_a_hold(tmp_path):
    store = Store(str(tmp_path / "g.db"))
    day = 86400.0
    store.guard_admit("i", [("consent", "a"), ("delete", "b")], [], None, day, now=1000.0)
    store.guard_admit("i", [("consent", "c")], [("consent", "d"), ("delete", "e")],
                      "too many", day, now=2000.0)
    state = store.guard_state("i", day, now=2000.0)
    assert state == {"count": 3, "held_since": 2000.0, "reason": "too many",
                     "held": {"consent": 1, "delete": 1}}
    # the window forgets what is older than a day; the hold stays
    later = store.guard_state("i", day, now=1000.0 + day + 1)
    assert later["count"] == 1 and later["held_since"] == 2000.0
    store.guard_admit("i", [], [("consent", "f")], "again", day, now=3000.0)
    assert store.guard_state("i", day, now=3000.0)["reason"] == "too many"  # held since first
    store.close()
    store = Store(str(tmp_path / "g.db"))  # a restart
    assert store.guard_state("i", day, now=3000.0)["held_since"] == 2000.0
    released = store.guard_confirm("i", now=4000.0)
    assert sorted(released) == [("consent", "d"), ("consent", "f"), ("delete", "e")]
    assert store.guard_state("i", day, now=4000.0) == {"count": 0, "held_since": None,
                                                        "reason": None, "held": {}}
    assert store.guard_take_confirmed("i", [("consent", "d"), ("consent", "x")]) == {
        ("consent", "d")}
    assert store.guard_take_confirmed("i", [("consent", "d")]) == set()  # passes once
    store.close()
