"""The coordinator's timers are APScheduler jobs (syncd/engine/timers.py): a drain retry, a
consent poll and a response-data step are one-shot jobs of the scheduler it is given, they fire
as messages to the coordinator, and stopping it (or a reload turning a poll off) removes them.

The scheduler starts paused: a timer is seen in the job list before it can fire, and fires
when the test resumes the scheduler."""

import subprocess
import sys
import threading
from datetime import UTC, datetime

import pykka
import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
from apscheduler.schedulers.background import BackgroundScheduler

from syncd.config.model import ConsentMapping, IntegrationConfig
from syncd.connectors.connection import ConnectionActor
from syncd.engine import rules as R
from syncd.engine.coordinator import Coordinator, Progress
from syncd.engine.store import Store
from syncd.engine.timers import SchedulerTimers, default_timers, shared_scheduler
from syncd.exceptions import RemoteError
from syncd.records import Event, Record
from syncd.testing import MemoryConnector, wait_for

pytestmark = pytest.mark.usefixtures("actors")

NEWS = ConsentMapping("Newsletter", "news", "email")


@pytest.fixture
def scheduler():
    s = BackgroundScheduler(timezone=UTC)
    s.start(paused=True)
    yield s
    s.shutdown(wait=False)


@pytest.fixture
def setup(tmp_path, memory_world, scheduler):
    world_name, world = memory_world
    store = Store(str(tmp_path / "syncd.db"))
    refs = {n: ConnectionActor.start(MemoryConnector(n, {"world": world_name}))
            for n in ("src", "dst")}
    caps = {"source": MemoryConnector.capabilities, "destination": MemoryConnector.capabilities}

    def make(**kw):
        integration = IntegrationConfig("i", "src", "dst", **kw)
        timers = SchedulerTimers(scheduler, "i")
        ref = Coordinator.start(integration, R.Rules.from_integration(integration), store,
                                lambda n: refs[n].proxy(), progress=Progress(),
                                capabilities=caps, timers=timers)
        ref.proxy().ping().get(timeout=5)  # on_start has run
        return ref, timers

    for i in range(5):
        world.put(Record(f"p{i}", email=f"p{i}@x.nl", fields={"FirstName": f"n{i}"}))
        world.set_label(f"p{i}", "Newsletter", True, at="2026-01-01T00:00:00+00:00")
    yield world, store, make
    pykka.ActorRegistry.stop_all(block=True, timeout=10)
    store.close()


def job_ids(scheduler):
    return {job.id for job in scheduler.get_jobs()}


def test_a_drain_retry_is_a_scheduler_job_that_fires_the_drain(setup, scheduler, monkeypatch):
    world, store, make = setup
    monkeypatch.setattr(R, "retry_delay", lambda attempts, cap=0: 0.3)
    refused = threading.Event()
    read = MemoryConnector.read_records

    def once_unavailable(self, events):
        if not refused.is_set():
            refused.set()
            raise RemoteError("503 Service Unavailable", status=503, retryable=True)
        return read(self, events)

    monkeypatch.setattr(MemoryConnector, "read_records", once_unavailable)
    ref, timers = make(fields={"FirstName": "firstname"})
    store.enqueue([("i", "src", Event("p1"))])
    ref.proxy().notify().get(timeout=5)
    assert wait_for(lambda: timers.job_id("drain") in job_ids(scheduler))
    assert store.pending_count("i") == 1 and "p1" not in world.profiles  # waits for it
    scheduler.resume()
    assert wait_for(lambda: store.pending_count("i") == 0)
    assert world.profiles["p1"]["firstname"] == "n1"
    assert wait_for(lambda: timers.job_id("drain") not in job_ids(scheduler))  # one-shot


def test_the_consent_poll_is_a_scheduler_job_set_again_after_each_poll(setup, scheduler):
    world, store, make = setup
    ref, timers = make(consents=(NEWS,), consent_poll_interval=3600)
    poll = timers.job_id("consent_poll")
    job = scheduler.get_job(poll)
    assert job is not None
    assert 3590 < (job.next_run_time - datetime.now(UTC)).total_seconds() <= 3600
    run_id = ref.proxy().start_full_sync().get(timeout=5)
    assert wait_for(lambda: store.run(run_id)["status"] == "completed")
    assert wait_for(lambda: world.history.count(("read", 0)) >= 1)  # first read: from now
    world.unsubscribe("p3", "news", "email", at="2026-06-01T00:00:00+00:00")
    scheduler.modify_job(poll, next_run_time=datetime.now(UTC))  # due now
    scheduler.resume()
    assert wait_for(lambda: "Newsletter" not in world.records["p3"].labels)  # written back
    assert wait_for(lambda: (j := scheduler.get_job(poll)) is not None and
                    (j.next_run_time - datetime.now(UTC)).total_seconds() > 3500)


def test_stopping_a_coordinator_removes_its_jobs_and_no_other(setup, scheduler):
    _, store, make = setup
    other = scheduler.add_job(print, "date", run_date=datetime(2099, 1, 1, tzinfo=UTC),
                              id="someone:else")
    ref, timers = make(consents=(NEWS,), consent_poll_interval=3600)
    store.enqueue([("i", "src", Event("p1"))])
    timers.call_later("drain", 3600, ref.proxy().drain.defer)
    assert {timers.job_id("consent_poll"), timers.job_id("drain")} <= job_ids(scheduler)
    ref.stop(block=True, timeout=10)
    assert job_ids(scheduler) == {other.id}


def test_a_reload_that_turns_the_consent_poll_off_removes_its_job(setup, scheduler):
    _, _, make = setup
    ref, timers = make(consents=(NEWS,), consent_poll_interval=3600)
    assert timers.job_id("consent_poll") in job_ids(scheduler)
    plain = IntegrationConfig("i", "src", "dst")
    ref.proxy().set_rules(R.Rules.from_integration(plain), plain).get(timeout=5)
    assert timers.job_id("consent_poll") not in job_ids(scheduler)


def test_two_coordinators_of_one_name_keep_their_own_timers(scheduler):
    first, second = SchedulerTimers(scheduler, "i"), SchedulerTimers(scheduler, "i")
    first.call_later("drain", 60, lambda: None)
    second.call_later("drain", 60, lambda: None)
    first.call_later("drain", 120, lambda: None)  # replaces its own, not the other's
    assert len(scheduler.get_jobs()) == 2
    first.cancel_all()
    assert list(second.pending()) == ["drain"] and first.pending() == {}


def test_a_coordinator_built_without_timers_gets_the_shared_scheduler():
    fired = threading.Event()

    class Target(pykka.ThreadingActor):
        def poke(self):
            fired.set()

    proxy = Target.start().proxy()
    timers = default_timers("target")
    assert shared_scheduler().running
    timers.call_later("poke", 0.01, proxy.poke.defer)
    assert fired.wait(5)
    assert timers.pending() == {}


def test_a_timer_of_a_stopped_actor_is_dropped_quietly(scheduler):
    ran, errors = threading.Event(), []
    scheduler.add_listener(lambda e: errors.append(e) if e.exception else ran.set(),
                           EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    scheduler.resume()

    class Target(pykka.ThreadingActor):
        def poke(self):
            pass

    ref = Target.start()
    proxy = ref.proxy()
    ref.stop(block=True)
    SchedulerTimers(scheduler, "target").call_later("poke", 0.0, proxy.poke.defer)
    assert ran.wait(5)
    assert errors == []


EXITING = """
import subprocess
import sys
import threading
from syncd.engine.timers import default_timers, shared_scheduler
from syncd.testing import wait_for

fired = threading.Event()
default_timers("exiting").call_later("late", 0.3, fired.set)

def linger():  # a non-daemon thread the exiting interpreter joins: alive when the timer is due
    assert wait_for(lambda: not shared_scheduler().get_jobs(), timeout=20)
    print("fired" if fired.is_set() else "not fired", flush=True)

threading.Thread(target=linger).start()
"""


def test_a_shared_timer_due_while_the_process_exits_fires_and_prints_no_traceback():
    # the main thread has returned (the pools of concurrent.futures are shut down) and the
    # interpreter waits for a non-daemon thread when the timer comes due
    done = subprocess.run([sys.executable, "-c", EXITING], capture_output=True, text=True,
                          timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "fired\n", "")
