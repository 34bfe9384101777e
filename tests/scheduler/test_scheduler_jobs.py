"""Scheduler: jobs that only send messages, reconciled with the config by stable id.

Runs use a real BackgroundScheduler; tests synchronise on threading.Event, never on sleep.
A run is brought forward by setting the job's next run time (APScheduler's own API).
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED

from syncd.app.scheduler import MISFIRE_GRACE, Scheduler, job_specs
from syncd.config.model import Config, IntegrationConfig, Overview, Schedule

UTC = timezone.utc
WAIT = 10.0
NIGHT = Schedule("02:30", "Europe/Amsterdam")
MORNING = Schedule("06:00", "Europe/Amsterdam", ("mon", "wed", "fri"))


def make_config(**changes) -> Config:
    integration = IntegrationConfig(
        name="tribe-apsis", source="tribe", destination="apsis", daily_creation=NIGHT,
        overviews=(Overview("Event visitors", "event-visitor", MORNING),
                   Overview("Trade fair leads", "trade-fair", None)))
    integration = replace(integration, **changes)
    return Config(path="/etc/syncd.toml", integrations={integration.name: integration})


class FakeSend:
    """Records what the jobs send; ``fail`` makes it raise like a dead actor would."""

    def __init__(self, fail: bool = False):
        self.calls: list[tuple[str, str, dict]] = []
        self.called = threading.Event()
        self.fail = fail

    def __call__(self, integration, job, params):
        self.calls.append((integration, job, params))
        self.called.set()
        if self.fail:
            raise RuntimeError("coordinator tribe-apsis is restarting")


@pytest.fixture
def schedulers():
    made: list[Scheduler] = []

    def make(send, **kwargs) -> Scheduler:
        made.append(Scheduler(send, **kwargs))
        return made[-1]

    yield make
    for s in made:
        s.shutdown(wait=True)


def events(scheduler: Scheduler, mask: int) -> tuple[list, threading.Event]:
    seen, happened = [], threading.Event()

    def listener(event):
        seen.append(event)
        happened.set()

    scheduler._scheduler.add_listener(listener, mask)
    return seen, happened


def run_now(scheduler: Scheduler, job_id: str) -> None:
    scheduler._scheduler.modify_job(job_id, next_run_time=datetime.now(UTC))


def by_id(scheduler: Scheduler) -> dict[str, dict]:
    return {j["id"]: j for j in scheduler.jobs()}


# -- what is scheduled ---------------------------------------------------------------------

def test_job_ids_are_stable_and_on_demand_overviews_have_no_job():
    specs = job_specs(make_config())
    assert set(specs) == {"tribe-apsis:daily_creation", "tribe-apsis:overview:Event visitors"}
    assert specs["tribe-apsis:daily_creation"].params == {"overlap": 3600.0}
    assert specs["tribe-apsis:overview:Event visitors"].params == {
        "overview": "Event visitors", "tag": "event-visitor"}
    assert job_specs(make_config(enabled=False)) == {}
    assert job_specs(make_config(daily_creation=None, overviews=())) == {}


def test_jobs_lists_next_run_in_local_time_with_offset(schedulers):
    s = schedulers(FakeSend())
    s.reconcile(make_config())
    for started in (False, True):
        if started:
            s.start()
        jobs = by_id(s)
        daily = jobs["tribe-apsis:daily_creation"]
        assert daily["integration"] == "tribe-apsis" and daily["kind"] == "daily_creation"
        assert daily["schedule"] == "02:30 Europe/Amsterdam"
        next_run = datetime.fromisoformat(daily["next_run"])
        assert next_run.utcoffset() in (timedelta(hours=1), timedelta(hours=2))
        assert next_run.strftime("%H:%M") in ("02:30", "03:30")  # 03:30 only on spring-forward
        assert next_run > datetime.now(UTC) and daily["last_run"] is None
        overview = jobs["tribe-apsis:overview:Event visitors"]
        assert overview["kind"] == "overview" and overview["overview"] == "Event visitors"
        assert datetime.fromisoformat(overview["next_run"]).strftime("%a") in ("Mon", "Wed", "Fri")


def test_jobs_use_the_long_grace_coalesce_and_one_instance(schedulers):
    s = schedulers(FakeSend())
    s.reconcile(make_config())
    s.start()
    for job in s._scheduler.get_jobs():
        assert job.coalesce is True
        assert job.max_instances == 1
        assert job.misfire_grace_time == MISFIRE_GRACE >= 3600
        assert str(job.trigger).startswith("daily at ")


# -- running -------------------------------------------------------------------------------

def test_a_job_only_calls_send(schedulers):
    send = FakeSend()
    s = schedulers(send)
    s.reconcile(make_config())
    s.start()
    run_now(s, "tribe-apsis:overview:Event visitors")
    assert send.called.wait(WAIT)
    ((integration, job, params),) = send.calls
    assert (integration, job) == ("tribe-apsis", "overview")
    assert params["overview"] == "Event visitors" and params["tag"] == "event-visitor"
    assert datetime.fromisoformat(params["fired_at"]).tzinfo is not None
    # it ran once and is back on its schedule
    assert datetime.fromisoformat(by_id(s)["tribe-apsis:overview:Event visitors"]["next_run"]
                                  ) > datetime.now(UTC)


def test_a_failing_send_never_raises_into_apscheduler(schedulers):
    send = FakeSend(fail=True)
    s = schedulers(send)
    s.reconcile(make_config())
    errors, _ = events(s, EVENT_JOB_ERROR)
    executed, done = events(s, EVENT_JOB_EXECUTED)
    s.start()
    run_now(s, "tribe-apsis:daily_creation")
    assert done.wait(WAIT)
    assert send.calls and not errors
    assert by_id(s)["tribe-apsis:daily_creation"]["last_run"] is None  # not counted as run


# -- reconcile -----------------------------------------------------------------------------

def test_reconcile_keeps_unchanged_jobs_and_their_next_run(schedulers):
    s = schedulers(FakeSend())
    assert s.reconcile(make_config())["added"] == [
        "tribe-apsis:daily_creation", "tribe-apsis:overview:Event visitors"]
    s.start()
    before = {j.id: j.next_run_time for j in s._scheduler.get_jobs()}
    assert s.reconcile(make_config()) == {"added": [], "changed": [], "removed": []}
    assert {j.id: j.next_run_time for j in s._scheduler.get_jobs()} == before


def test_reconcile_reschedules_a_changed_time(schedulers):
    s = schedulers(FakeSend())
    s.reconcile(make_config())
    s.start()
    done = s.reconcile(make_config(daily_creation=Schedule("23:15", "Asia/Tokyo")))
    assert done["changed"] == ["tribe-apsis:daily_creation"]
    daily = by_id(s)["tribe-apsis:daily_creation"]
    assert daily["schedule"] == "23:15 Asia/Tokyo"
    assert daily["next_run"].endswith("+09:00") and "T23:15:00" in daily["next_run"]


def test_reconcile_changes_the_message_without_moving_the_run(schedulers):
    send = FakeSend()
    s = schedulers(send)
    s.reconcile(make_config())
    s.start()
    before = by_id(s)["tribe-apsis:overview:Event visitors"]["next_run"]
    config = make_config(overviews=(Overview("Event visitors", "visitor-2026", MORNING),))
    assert s.reconcile(config)["changed"] == ["tribe-apsis:overview:Event visitors"]
    assert by_id(s)["tribe-apsis:overview:Event visitors"]["next_run"] == before
    run_now(s, "tribe-apsis:overview:Event visitors")
    assert send.called.wait(WAIT)
    assert send.calls[0][2]["tag"] == "visitor-2026"


def test_reconcile_removes_deleted_and_disabled_jobs(schedulers):
    s = schedulers(FakeSend())
    s.reconcile(make_config())
    s.start()
    done = s.reconcile(make_config(overviews=()))
    assert done["removed"] == ["tribe-apsis:overview:Event visitors"]
    assert set(by_id(s)) == {"tribe-apsis:daily_creation"}
    # on demand only now: the overview is still configured but has no job
    s.reconcile(make_config(overviews=(Overview("Event visitors", "event-visitor", None),)))
    assert set(by_id(s)) == {"tribe-apsis:daily_creation"}
    s.reconcile(make_config(enabled=False))
    assert s.jobs() == [] and s._scheduler.get_jobs() == []
    s.reconcile(make_config())  # and back
    assert set(by_id(s)) == {"tribe-apsis:daily_creation", "tribe-apsis:overview:Event visitors"}


# -- late and missed runs ------------------------------------------------------------------

def test_a_late_run_within_the_grace_still_runs_once(schedulers):
    """The scheduler could not run the job on time (process suspended, machine asleep):
    with APScheduler's default grace of 1 s it would be skipped; here it runs, once."""
    send = FakeSend()
    s = schedulers(send)
    s.reconcile(make_config())
    s._scheduler.start(paused=True)
    late = datetime.now(UTC) - timedelta(minutes=40)
    s._scheduler.modify_job("tribe-apsis:daily_creation", next_run_time=late)
    s._scheduler.resume()
    assert send.called.wait(WAIT)
    assert [c[1] for c in send.calls] == ["daily_creation"]
    next_run = s._scheduler.get_job("tribe-apsis:daily_creation").next_run_time
    assert next_run > datetime.now(UTC)  # back on schedule: no second run


def test_with_apschedulers_default_grace_the_late_run_is_skipped(schedulers):
    send = FakeSend()
    s = schedulers(send, misfire_grace_time=1)
    s.reconcile(make_config())
    missed, was_missed = events(s, EVENT_JOB_MISSED)
    s._scheduler.start(paused=True)
    late = datetime.now(UTC) - timedelta(minutes=40)
    s._scheduler.modify_job("tribe-apsis:daily_creation", next_run_time=late)
    s._scheduler.resume()
    assert was_missed.wait(WAIT)
    assert not send.calls


def _due_minutes_ago(minutes: int) -> tuple[Schedule, datetime]:
    """A UTC schedule whose run time today passed ``minutes`` (+<1) minutes ago."""
    due = (datetime.now(UTC) - timedelta(minutes=minutes)).replace(second=0, microsecond=0)
    return Schedule(due.strftime("%H:%M"), "UTC"), due


def _state(tmp_path, **last_run: datetime) -> str:
    path = tmp_path / "scheduler.json"
    path.write_text(json.dumps({"last_run": {
        f"tribe-apsis:{k}": v.isoformat() for k, v in last_run.items()}}))
    return str(path)


def test_a_run_missed_while_syncd_was_down_runs_at_start(schedulers, tmp_path):
    schedule, due = _due_minutes_ago(5)
    state = _state(tmp_path, daily_creation=due - timedelta(days=1))  # ran yesterday
    send = FakeSend()
    s = schedulers(send, state_file=state)
    assert s.reconcile(make_config(daily_creation=schedule, overviews=()))["added"]
    _, executed = events(s, EVENT_JOB_EXECUTED)  # after the job returned (and saved its run)
    s.start()
    assert executed.wait(WAIT)
    assert [c[1] for c in send.calls] == ["daily_creation"]
    saved = json.loads((tmp_path / "scheduler.json").read_text())["last_run"]
    assert datetime.fromisoformat(saved["tribe-apsis:daily_creation"]) > due
    # the next start (a second restart) does not run it again
    again = schedulers(FakeSend(), state_file=state)
    again.reconcile(make_config(daily_creation=schedule, overviews=()))
    assert datetime.fromisoformat(by_id(again)["tribe-apsis:daily_creation"]["next_run"]
                                  ) > datetime.now(UTC)


@pytest.mark.parametrize("last_run", ["after_due", "never", "beyond_grace"])
def test_no_catch_up_when_it_ran_never_ran_or_is_too_late(schedulers, tmp_path, last_run):
    minutes = MISFIRE_GRACE // 60 + 5 if last_run == "beyond_grace" else 5
    schedule, due = _due_minutes_ago(minutes)
    when = {"after_due": due + timedelta(seconds=1),
            "beyond_grace": due - timedelta(days=1)}.get(last_run)
    state = _state(tmp_path, **({"daily_creation": when} if when else {}))
    s = schedulers(FakeSend(), state_file=state)
    s.reconcile(make_config(daily_creation=schedule, overviews=()))
    next_run = datetime.fromisoformat(by_id(s)["tribe-apsis:daily_creation"]["next_run"])
    assert next_run > datetime.now(UTC)


def test_an_unreadable_state_file_is_ignored(schedulers, tmp_path):
    path = tmp_path / "scheduler.json"
    path.write_text("{not json")
    s = schedulers(FakeSend(), state_file=str(path))
    s.reconcile(make_config())
    assert len(s.jobs()) == 2
