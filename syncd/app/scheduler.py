"""Scheduled jobs: the daily creation of new contacts and recurring overview imports (seed 001).

A job only sends a message: it calls ``send(integration, job, params)``, which the daemon
makes a ``tell`` to the integration's coordinator; the coordinator does the work. ``send``
never raises into APScheduler (a failure is logged). Jobs are kept in step with the config by
:meth:`Scheduler.reconcile`, by stable id (``"{integration}:daily_creation"``,
``"{integration}:overview:{name}"``): an unchanged job keeps its next run time.

Two APScheduler 3.x defaults bite a daily job, so both are set here:

- ``misfire_grace_time`` is 1 s by default: a run that is late (process suspended, the
  machine asleep, a busy executor) is silently skipped. Here: 6 hours, coalesced to one run,
  never two at once.
- ``CronTrigger`` fires a local time that occurs twice on the fall-back day twice (02:30
  Europe/Amsterdam on 2026-10-25 fires at 00:30 and 01:30 UTC). :class:`DailyTrigger` fires
  once per local day instead: at the first occurrence of an ambiguous time, and a time that
  does not exist on the spring-forward day (02:30 on 2026-03-29) moved forward by the gap
  (03:30 CEST), as ``CronTrigger`` also does.

A run missed while syncd was not running at all (a restart at 02:31 for a 02:30 job) is
caught up at start when the optional ``state_file`` says the job has not run since, and the
run time is within the grace.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from syncd.config.model import Config, Schedule
from syncd.engine.timers import SchedulerTimers

log = structlog.get_logger("syncd.app.scheduler")

UTC = timezone.utc
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: Seconds a run may be late and still run (APScheduler's default is 1).
MISFIRE_GRACE = 6 * 3600
DAILY_CREATION = "daily_creation"
OVERVIEW = "overview"
RESPONSES = "responses"

#: ``send(integration, job, params)``: hand a job to the integration's coordinator.
Send = Callable[[str, str, dict[str, Any]], None]


class DailyTrigger(BaseTrigger):
    """Fires once on each chosen local day at a wall-clock time; DST-safe (see module doc).

    Fire times are returned in UTC, so no comparison inside APScheduler ever meets an
    ambiguous local time.
    """

    def __init__(self, hour: int, minute: int, tz: str | ZoneInfo,
                 days: Iterable[str] = ()):
        self.hour, self.minute = hour, minute
        self.timezone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
        self.days = tuple(days)
        self.weekdays = frozenset(DAYS.index(d) for d in self.days) or frozenset(range(7))

    @classmethod
    def from_schedule(cls, schedule: Schedule) -> DailyTrigger:
        return cls(schedule.hour, schedule.minute, schedule.timezone, schedule.days)

    def fire_time_on(self, day: date) -> datetime:
        """The instant (UTC) of ``day``'s run. ``fold=0`` picks the first of a repeated
        time and maps a skipped time by the offset before the gap, i.e. forward by it."""
        wall = datetime.combine(day, time(self.hour, self.minute), tzinfo=self.timezone)
        return wall.astimezone(UTC)

    def get_next_fire_time(self, previous_fire_time: datetime | None,
                           now: datetime) -> datetime | None:
        # Like CronTrigger: the first run after the previous one (even if before ``now``,
        # so that the scheduler sees a misfire), else the first at or after ``now``.
        if previous_fire_time is not None:  # to UTC first: aware local arithmetic ignores fold
            threshold = previous_fire_time.astimezone(UTC) + timedelta(microseconds=1)
        else:
            threshold = now.astimezone(UTC)
        day = threshold.astimezone(self.timezone).date() - timedelta(days=1)
        for _ in range(9):
            if day.weekday() in self.weekdays:
                candidate = self.fire_time_on(day)
                if candidate >= threshold:
                    return candidate
            day += timedelta(days=1)
        return None  # not reached: weekdays is never empty

    def __str__(self) -> str:
        days = f" on {','.join(self.days)}" if self.days else ""
        return f"daily at {self.hour:02d}:{self.minute:02d} {self.timezone.key}{days}"

    def __repr__(self) -> str:
        return f"<DailyTrigger ({self})>"


@dataclass(frozen=True)
class JobSpec:
    """One scheduled job as the config asks for it."""

    id: str
    integration: str
    kind: str  # DAILY_CREATION | OVERVIEW | RESPONSES
    schedule: Schedule | None
    params: Mapping[str, Any] = field(default_factory=dict)
    #: Seconds between runs of an interval job (response data); None: daily ``schedule``.
    interval: float | None = None

    def trigger(self) -> BaseTrigger:
        if self.interval is not None:
            return IntervalTrigger(seconds=self.interval, timezone=UTC)
        assert self.schedule is not None
        return DailyTrigger.from_schedule(self.schedule)

    def describe(self) -> str:
        return f"every {self.interval:g} s" if self.interval is not None else str(self.schedule)


def job_specs(config: Config) -> dict[str, JobSpec]:
    """The jobs ``config`` asks for, by id (none for a disabled integration)."""
    specs: dict[str, JobSpec] = {}
    for name, integration in config.integrations.items():
        if not integration.enabled:
            continue
        if integration.daily_creation is not None:
            job_id = f"{name}:{DAILY_CREATION}"
            specs[job_id] = JobSpec(job_id, name, DAILY_CREATION, integration.daily_creation,
                                    {"overlap": integration.daily_creation_overlap})
        for overview in integration.overviews:
            if overview.schedule is not None:
                job_id = f"{name}:{OVERVIEW}:{overview.name}"
                specs[job_id] = JobSpec(job_id, name, OVERVIEW, overview.schedule,
                                        {"overview": overview.name, "tag": overview.tag})
        if integration.response_events:
            job_id = f"{name}:{RESPONSES}"
            specs[job_id] = JobSpec(job_id, name, RESPONSES, None,
                                    interval=integration.responses_interval)
    return specs


class Scheduler:
    """APScheduler's ``BackgroundScheduler`` running jobs that only call ``send``."""

    def __init__(self, send: Send, *, state_file: str | None = None,
                 misfire_grace_time: int = MISFIRE_GRACE):
        self._send = send
        self._grace = misfire_grace_time
        self._scheduler = BackgroundScheduler(timezone=UTC, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": misfire_grace_time})
        self._specs: dict[str, JobSpec] = {}
        self._lock = threading.RLock()
        self._state_file = state_file
        self._last_run = self._read_state()

    # -- life cycle --------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._scheduler.running

    def start(self) -> None:
        self._scheduler.start()
        log.info("scheduler.started", jobs=len(self._specs))

    def timers(self, owner: str) -> SchedulerTimers:
        """Timers for one actor (:mod:`syncd.engine.timers`), as one-shot jobs of this
        scheduler; they are not listed by :meth:`jobs` nor touched by :meth:`reconcile`."""
        return SchedulerTimers(self._scheduler, owner)

    def shutdown(self, wait: bool = False) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=wait)
            log.info("scheduler.stopped")

    # -- jobs --------------------------------------------------------------------------------

    def reconcile(self, config: Config) -> dict[str, list[str]]:
        """Add, reschedule and remove jobs to match ``config``; returns the ids touched.

        Called before :meth:`start` (where missed runs are caught up, see module doc) and on
        every reload. A job whose schedule and parameters are unchanged is left alone.
        """
        wanted = job_specs(config)
        done: dict[str, list[str]] = {"added": [], "changed": [], "removed": []}
        with self._lock:
            for job_id in sorted(self._specs.keys() - wanted.keys()):
                try:
                    self._scheduler.remove_job(job_id)
                except JobLookupError:
                    pass
                del self._specs[job_id]
                self._last_run.pop(job_id, None)
                done["removed"].append(job_id)
            for job_id, spec in sorted(wanted.items()):
                old = self._specs.get(job_id)
                if old == spec:
                    continue
                trigger = spec.trigger()
                args = (job_id, spec.integration, spec.kind, dict(spec.params))
                if old is None:
                    extra = {}
                    missed = None if self.running or spec.interval is not None else \
                        self._missed_run(job_id, trigger)
                    if missed is not None:
                        extra["next_run_time"] = missed
                        log.warning("scheduler.catching_up", job=job_id,
                                    missed=missed.isoformat())
                    self._scheduler.add_job(self._run, trigger, args=args, id=job_id,
                                            name=job_id, replace_existing=True, **extra)
                    done["added"].append(job_id)
                else:
                    self._scheduler.modify_job(job_id, args=args)
                    if (old.schedule, old.interval) != (spec.schedule, spec.interval):
                        self._scheduler.reschedule_job(job_id, trigger=trigger)
                    done["changed"].append(job_id)
                self._specs[job_id] = spec
        if any(done.values()):
            log.info("scheduler.reconciled", **done)
        return done

    def jobs(self) -> list[dict[str, Any]]:
        """The scheduled jobs for ``syncd status``; ``next_run`` is local ISO with offset."""
        with self._lock:
            out = []
            for job in sorted(self._scheduler.get_jobs(), key=lambda j: j.id):
                spec = self._specs.get(job.id)
                if spec is None:
                    continue
                next_run = getattr(job, "next_run_time", None)  # unset until started
                if next_run is None and not self.running:
                    next_run = job.trigger.get_next_fire_time(None, datetime.now(UTC))
                tz = ZoneInfo(spec.schedule.timezone) if spec.schedule else UTC
                last = self._last_run.get(job.id)
                out.append({
                    "id": job.id, "integration": spec.integration, "kind": spec.kind,
                    **({"overview": spec.params["overview"]} if spec.kind == OVERVIEW else {}),
                    "schedule": spec.describe(),
                    "next_run": next_run.astimezone(tz).isoformat() if next_run else None,
                    "last_run": last.astimezone(tz).isoformat() if last else None,
                })
            return out

    # -- running -----------------------------------------------------------------------------

    def _run(self, job_id: str, integration: str, kind: str, params: dict[str, Any]) -> None:
        """The job function: send the message; never raise into APScheduler."""
        started = datetime.now(UTC)
        try:
            self._send(integration, kind, {**params, "fired_at": started.isoformat()})
        except Exception as exc:
            log.error("scheduler.send_failed", job=job_id, integration=integration,
                      error=f"{type(exc).__name__}: {exc}")
            return
        log.info("scheduler.job_sent", job=job_id, integration=integration, kind=kind)
        with self._lock:
            self._last_run[job_id] = started
            self._write_state()

    def _missed_run(self, job_id: str, trigger: DailyTrigger) -> datetime | None:
        """The run time within the grace that passed since this job last ran, if any."""
        last = self._last_run.get(job_id)
        if last is None:  # never ran here (a new job): nothing to catch up
            return None
        now = datetime.now(UTC)
        due = trigger.get_next_fire_time(None, now - timedelta(seconds=self._grace))
        return due if due is not None and last < due <= now else None

    def _read_state(self) -> dict[str, datetime]:
        if not self._state_file or not os.path.exists(self._state_file):
            return {}
        try:
            with open(self._state_file, encoding="utf-8") as f:
                data = json.load(f)
            return {k: datetime.fromisoformat(v) for k, v in data.get("last_run", {}).items()}
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            log.warning("scheduler.state_unreadable", file=self._state_file,
                        error=f"{type(exc).__name__}: {exc}")
            return {}

    def _write_state(self) -> None:
        if not self._state_file:
            return
        tmp = f"{self._state_file}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"last_run": {k: v.isoformat() for k, v in self._last_run.items()}},
                          f)
            os.replace(tmp, self._state_file)
        except OSError as exc:
            log.warning("scheduler.state_not_saved", file=self._state_file, error=str(exc))
