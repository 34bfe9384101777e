"""Timers of the engine: one mechanism, APScheduler, for every "later" an actor needs (the
retry of a real-time drain, the next consent poll, the next step of a response-data run).

A timer only sends a message: ``fn`` is a ``tell`` (``proxy.method.defer``) to the actor that
set it, run on the scheduler's thread, so no actor state is ever touched there. A message to
an actor that has stopped meanwhile is dropped.

:class:`Timers` is what an actor holds. :class:`SchedulerTimers` implements it on an APScheduler
scheduler: one one-shot ``date`` job per key, its id ``"timer:{owner}#{n}:{key}"`` (``n``
tells apart two actors of one owner, such as a coordinator restarted after a crash), so that
setting a key again replaces its job and :meth:`SchedulerTimers.cancel_all` removes exactly the
jobs of one actor. The daemon makes them on its own scheduler
(:meth:`syncd.app.scheduler.Scheduler.timers`); an actor started without one (tests, tools)
gets :func:`default_timers`, on a scheduler shared by the process and started on first use.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

import pykka
import structlog
from apscheduler.executors.debug import DebugExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.date import DateTrigger

log = structlog.get_logger("syncd.engine.timers")

PREFIX = "timer:"
#: A timer's job only tells: a firing never waits for an earlier one of its key, and a late one
#: (a suspended process) still fires, however late.
_JOB_OPTIONS = {"coalesce": True, "max_instances": 100, "misfire_grace_time": None}


class Timers(Protocol):
    """The timers of one actor, by key: setting a key again replaces its timer."""

    def call_later(self, key: str, delay: float, fn: Callable[[], object]) -> None:
        """Run ``fn`` (a tell to the actor) once, ``delay`` seconds from now."""

    def cancel(self, key: str) -> None:
        """Forget the timer of ``key``, if one is set."""

    def cancel_all(self) -> None:
        """Forget every timer of this actor (it stops)."""


_instances = itertools.count(1)


class SchedulerTimers:
    """:class:`Timers` as one-shot jobs of an APScheduler scheduler (see the module doc)."""

    def __init__(self, scheduler: BaseScheduler, owner: str):
        self._scheduler = scheduler
        self.prefix = f"{PREFIX}{owner}#{next(_instances)}:"

    def job_id(self, key: str) -> str:
        return self.prefix + key

    def call_later(self, key: str, delay: float, fn: Callable[[], object]) -> None:
        when = datetime.now(UTC) + timedelta(seconds=max(0.0, delay))
        job_id = self.job_id(key)
        self._scheduler.add_job(_fire, DateTrigger(run_date=when, timezone=UTC),
                                args=(job_id, fn), id=job_id, name=job_id,
                                replace_existing=True, **_JOB_OPTIONS)

    def cancel(self, key: str) -> None:
        try:
            self._scheduler.remove_job(self.job_id(key))
        except JobLookupError:  # fired already, or never set
            pass

    def cancel_all(self) -> None:
        for job in self._scheduler.get_jobs():
            if job.id.startswith(self.prefix):
                self.cancel(job.id[len(self.prefix):])

    def pending(self) -> dict[str, datetime | None]:
        """The keys set and not fired yet, with their run time (None before the scheduler
        starts)."""
        return {job.id[len(self.prefix):]: getattr(job, "next_run_time", None)
                for job in self._scheduler.get_jobs() if job.id.startswith(self.prefix)}


def _fire(job_id: str, fn: Callable[[], object]) -> None:
    """The job function: send the message; never raise into APScheduler."""
    try:
        fn()
    except pykka.ActorDeadError:
        pass  # the actor stopped meanwhile: nobody to tell
    except Exception as exc:
        log.error("timer.failed", timer=job_id, error=f"{type(exc).__name__}: {exc}")


_shared: BackgroundScheduler | None = None
_shared_lock = threading.Lock()


def shared_scheduler() -> BackgroundScheduler:
    """The process's scheduler for actors started without the daemon's (started on first
    use, its thread a daemon thread). Its jobs run on that thread itself (a timer only
    tells): with a pool, a timer coming due while the interpreter exits (non-daemon threads
    still being joined) would be refused by the pool already shut down, and APScheduler would
    print that error's traceback after everything else the process printed."""
    global _shared
    with _shared_lock:
        if _shared is None:
            scheduler = BackgroundScheduler(timezone=UTC, daemon=True,
                                            executors={"default": DebugExecutor()})
            scheduler.start()
            _shared = scheduler
        return _shared


def default_timers(owner: str) -> SchedulerTimers:
    return SchedulerTimers(shared_scheduler(), owner)
