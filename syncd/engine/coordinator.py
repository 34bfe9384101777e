"""One actor per integration: it sequences full syncs against the queued real-time events.

- Real-time (:mod:`syncd.engine.realtime`, ``coordinator.realtime``): the receiver stores
  events in the inbox and tells the coordinator; the coordinator reads the records back from
  the source, applies the rules and writes the profiles. Failures are retried with back-off
  (on the coordinator's timers, :mod:`syncd.engine.timers`); an event that fails for good (a
  4xx that retrying cannot fix, or ``max_attempts`` spent) becomes a dead letter.
- Full sync: the coordinator pages through the source, one page per message to itself, so
  a cancel or a status request is handled between pages. The next page is read while the
  current one is written (source and destination are separate actors). Progress, cursor
  and per-record errors are committed after every page, so an interrupted run can resume.
- While a full sync runs, real-time events are accepted and stored but not applied; they
  are applied after it ends (seed 001), so that the end state matches the source.
- Lanes (:mod:`syncd.engine.routing`): the real-time part calls the connections' real-time
  lanes, all else their bulk lanes; the coordinator's own steps still run one at a time.

The coordinator never ``.get()``s anything that can call it back: connection actors only
answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pykka
import structlog

from syncd.config.model import IntegrationConfig
from syncd.connectors.capabilities import Capability
from syncd.connectors.connection import ConnectionProxy
from syncd.engine import dryrun
from syncd.engine import rules as R
from syncd.engine.batch import RecordError, split_unreadable, tally
from syncd.engine.explain import Journal
from syncd.engine.failfast import FailedFast, FailFastWrites
from syncd.engine.guard import Guard, guard_status, held_error
from syncd.engine.jobs import CALL_TIMEOUT, Jobs, shortfall
from syncd.engine.progress import Progress as Progress
from syncd.engine.progress import processed_before
from syncd.engine.realtime import RealTime
from syncd.engine.responses import ResponseData
from syncd.engine.routing import LaneRouting
from syncd.engine.store import Store
from syncd.engine.timers import Timers, default_timers
from syncd.engine.writes import BatchWriter
from syncd.records import Record

log = structlog.get_logger("syncd.engine.coordinator")


class Coordinator(pykka.ThreadingActor):
    def __init__(
        self,
        integration: IntegrationConfig,
        rules: R.Rules,
        store: Store,
        connection: Callable[[str], ConnectionProxy],
        *,
        realtime: Callable[[str], ConnectionProxy] | None = None,
        progress: Progress | None = None,
        on_failure: Callable[[str, BaseException], None] | None = None,
        capabilities: dict[str, frozenset] | None = None,
        timers: Timers | None = None,
    ):
        super().__init__()
        self.integration = integration
        self.name = integration.name
        self.rules = rules
        self.store = store
        #: ``connection(name)`` returns the current proxy of a connection actor (it changes
        #: when the daemon restarts a crashed one); ``realtime(name)`` its real-time lane's.
        #: ``realtime(name)``: a connection's real-time lane (None: one lane).
        self.lanes = LaneRouting(connection, realtime)
        self.progress = progress or Progress()
        self._on_failure_cb = on_failure
        self._cursor: str | None = None
        self._prefetch: pykka.Future | None = None
        #: {"source": ..., "destination": ...}: the capabilities of the two connections
        self.capabilities = capabilities or {}
        self.log = log.bind(integration=self.name)
        #: Its timers (drain retries, consent polls, response steps): each only tells it.
        self.timers: Timers = timers or default_timers(self.name)
        self.realtime = RealTime(self)  # real-time events (:mod:`syncd.engine.realtime`)
        #: The response-data job (:mod:`syncd.engine.responses`): its steps are messages to self.
        self.responses = ResponseData(self)
        self.journal = Journal(store, self.name)  # what `syncd explain` tells
        #: The stop-and-confirm guard (:mod:`syncd.engine.guard`).
        self.gate = Guard(store, integration, self.journal, lambda: self.source, log=self.log,
                          can_read_record=Capability.READ_RECORD in self.capabilities.get(
                              "source", ()))
        #: Writes with the fail-fast probe first, and the real-time path's pause.
        self.failfast = FailFastWrites(lambda: self.destination, self.progress,
                                       integration.fail_fast, self.log)
        #: Writes and deletes through both, and what each answer means for its record.
        self.writer = BatchWriter(store, self.name, self.journal, self.gate, self.failfast,
                                  lambda: self.destination, self.log)
        #: Daily creation, overview imports and consent write-back (:mod:`syncd.engine.jobs`).
        self.jobs = Jobs(self)

    # -- life cycle ------------------------------------------------------------------------

    def on_start(self) -> None:
        self._self = self.actor_ref.proxy()
        self.progress.paused = None  # a restart resumes a paused real-time path
        self.jobs.schedule_consent_poll()

    def on_stop(self) -> None:
        self.timers.cancel_all()
        self.jobs.stop()
        self.responses.stop()
        if self.progress.state == "full_sync" and self.progress.run_id is not None:
            # Left as 'running' on purpose: the next start sees it as interrupted and resumes.
            self.log.info("full_sync.paused_by_stop", run_id=self.progress.run_id)
        self.progress.state = "stopped"

    def on_failure(self, exc_type, exc_value, tb) -> None:
        self.log.error("coordinator.crashed", error=f"{exc_type.__name__}: {exc_value}")
        self.timers.cancel_all()
        if self._on_failure_cb is not None:
            self._on_failure_cb(self.name, exc_value)

    @property
    def source(self) -> ConnectionProxy:  # in the lane of the work running (routing.py)
        return self.lanes.proxy(self.integration.source)

    @property
    def destination(self) -> ConnectionProxy:
        return self.lanes.proxy(self.integration.destination)

    # -- the public messages ---------------------------------------------------------------

    def set_rules(self, rules: R.Rules, integration: IntegrationConfig) -> None:
        """A reload changed conditions, mappings or settings of this integration. A page
        read ahead is read again: it was read for the old rules (e.g. without labels)."""
        self.rules = rules
        self.integration = self.gate.integration = integration
        self.failfast.window = integration.fail_fast
        self._drop_prefetch()  # read again
        self.jobs.schedule_consent_poll()
        self.resume("reload")

    def notify(self) -> None:
        """New events are in the inbox (told by the receiver)."""
        self.realtime.schedule()

    def drain(self) -> None:
        """Apply a batch of the inbox (:meth:`syncd.engine.realtime.RealTime.drain`); then
        write-backs that waited for a change now applied are decided again."""
        self.realtime.drain()
        self.jobs.write_backs.after_drain()

    def start_full_sync(self, resume: dict[str, Any] | None = None, confirm: bool = False
                        ) -> int:
        """Start a full sync and return its run id; refuses if one is running."""
        if self.progress.state == "full_sync":
            raise ValueError(f"a full sync of {self.name} is already running "
                             f"(run {self.progress.run_id})")
        cursor = resume.get("cursor") if resume else None
        # a resumed run carries the total over; its own counters count from the resume
        run_id = self.store.start_run(self.name, "full", cursor=cursor,
                                      resumed_from=resume.get("id") if resume else None,
                                      total=resume.get("total") if resume else None)
        self.progress.cancel.clear()
        self._cursor = cursor
        self._prefetch = None
        self.gate.start_run(run_id, confirm)  # confirmed: the hold and count start again
        self.failfast.new_run()
        self.resume("sync start")
        self._bulk: bool | None = None
        self._staged: list[R.Write] = []
        self._staged_counts: dict[str, int] = {}
        self._staged_errors: list = []
        self._staged_total: int | None = None
        done = processed_before(self.store, resume)
        # updated in place: the daemon and the CLI hold this object
        p = self.progress
        p.run_id, p.processed, p.counts = run_id, done, {}
        p.total = resume.get("total") if resume else None
        p.needs_full_sync, p.last_error = False, None
        p.state = "full_sync"
        self.log.info("full_sync.started", run_id=run_id, resumed_from=resume and resume["id"])
        if self.jobs.consent_write_back():  # learn of fresh opt-outs before writing consents
            self._self.run_job.defer("consent_changes", {})
        self._self.full_sync_step.defer()
        return run_id

    def cancel_full_sync(self) -> int | None:
        """Ask a running full sync to stop after the current page; returns its run id."""
        return self.progress.request_cancel()

    def ping(self) -> str:
        return self.name

    def resume(self, why: str = "reload") -> dict[str, Any]:
        """Resume a real-time path paused by fail-fast (a reload, a sync start)."""
        resumed = self.failfast.resume(why)
        if resumed:
            self.realtime.schedule()
        return {"integration": self.name, "resumed": resumed}

    def confirm(self) -> dict[str, Any]:
        """A person confirmed (:meth:`syncd.engine.guard.Guard.confirm`): what was held is
        applied again, and held write-backs go."""
        released = self.gate.confirm()
        if released["records"]:
            self.realtime.schedule()
        if released["write_backs"] and self.jobs.consent_write_back():
            self._self.run_job.defer("consent_changes", {})
        return released

    def guard(self) -> dict[str, Any]:
        return guard_status(self.store, self.integration)

    def run_job(self, job: str, params: dict[str, Any] | None = None) -> None:
        """A scheduled or on-demand job (:meth:`syncd.engine.jobs.Jobs.run_job`)."""
        self.jobs.run_job(job, params)

    def job_step(self) -> None:
        """One page of the running daily creation or overview import."""
        self.jobs.job_step()

    def job_running(self) -> bool:
        return self.jobs.job_running()

    def apply_plan(self, plan_run: int, run_id: int) -> None:
        """Apply a dry run's plan exactly (:mod:`syncd.engine.dryrun`)."""
        dryrun.apply(self, plan_run, run_id)

    def start_responses(self) -> int | None:
        """Start a response-data run now (``syncd responses run``); returns its id."""
        return self.responses.start({})

    def responses_step(self) -> None:
        """One step of the running response-data run (:mod:`syncd.engine.responses`)."""
        self.responses.step()

    # -- full sync -------------------------------------------------------------------------

    def _read(self, cursor: str | None) -> pykka.Future:
        return self.source.read_page(cursor, self.integration.page_size)

    def full_sync_step(self) -> None:
        if self.progress.state != "full_sync":
            return
        run_id = self.progress.run_id
        try:
            if self.progress.cancel.is_set():
                self._finish("cancelled")
                return
            future = self._prefetch or self._read(self._cursor)
            self._prefetch = None
            page = future.get(timeout=CALL_TIMEOUT)
            if page.cursor is not None and not self.progress.cancel.is_set():
                self._prefetch = self._read(page.cursor)  # overlaps the writes below
            counts, writes, deletes, unreadable = self._decide(list(page.records))
            if page.total is not None:  # the smallest count given: deletes meanwhile
                total = self.progress.total
                self.progress.total = page.total if total is None else min(total, page.total)
            if self._bulk is None:
                self._bulk = self._use_bulk(page.total)
            self._cursor = page.cursor
            if self._bulk:
                self._staged_errors.extend(unreadable)
                self._stage(counts, writes, deletes, page)
            else:
                counts, errors = self._write(counts, writes, deletes, full_sync=True)
                self._commit(counts, unreadable + errors, page.cursor, self.progress.total)
        except FailedFast as exc:
            self.log.error("full_sync.failed_fast", run_id=run_id, reason=str(exc))
            self._prefetch = None
            self._finish("failed", error=str(exc))
            return
        except Exception as exc:
            self.log.exception("full_sync.failed", run_id=run_id)
            self._prefetch = None
            self._finish("failed", error=f"{type(exc).__name__}: {exc}")
            return
        if page.cursor is None:
            self._finish("completed")
        elif self.progress.cancel.is_set():
            self._finish("cancelled")
        else:
            self._self.full_sync_step.defer()

    @property
    def _run_id(self) -> int:
        """The running full sync's id (``start_full_sync`` sets it before the first step)."""
        assert self.progress.run_id is not None, "no full sync has started"
        return self.progress.run_id

    def _drop_prefetch(self) -> None:
        """Forget the page read ahead, letting the source finish reading it quietly."""
        if self._prefetch is not None:
            try:
                self._prefetch.get(timeout=CALL_TIMEOUT)
            except Exception:
                pass
            self._prefetch = None

    def _commit(self, counts: dict[str, int], errors: list, cursor: str | None,
                total: int | None, pages_counted: bool = False) -> None:
        """Record a page's (or a bulk batch's) outcome and move the run's cursor."""
        self.store.progress_run(self._run_id, counts, cursor=cursor, total=total,
                                errors=errors)
        if not pages_counted:
            self.progress.processed += counts.get("processed", 0)
        for key, value in counts.items():
            if key != "processed" or not pages_counted:
                self.progress.counts[key] = self.progress.counts.get(key, 0) + value

    # -- bulk writes: large full syncs through the destination's import API ---------------

    def _use_bulk(self, total: int | None) -> bool:
        threshold = self.integration.bulk_threshold
        able = Capability.BULK_WRITE in self.capabilities.get("destination", ())
        return bool(able and threshold and total is not None and total > threshold)

    def _stage(self, counts: dict[str, int], writes: list[R.Write], deletes: list[R.Delete],
               page) -> None:
        """Collect a page's writes for the next import; the run's cursor moves only when
        the import is done, so an interrupted run reads those pages again."""
        if deletes:
            counts, errors = self._write(counts, [], deletes, full_sync=True)
            self._staged_errors.extend(errors)
        for key, value in counts.items():
            self._staged_counts[key] = self._staged_counts.get(key, 0) + value
        self.progress.processed += counts.get("processed", 0)
        self._staged.extend(writes)
        self._staged_total = self.progress.total
        if (len(self._staged) >= self.integration.bulk_batch or page.cursor is None
                or self.progress.cancel.is_set()):
            self._flush(page.cursor)

    def _flush(self, cursor: str | None) -> None:
        counts, writes = self._staged_counts, self._staged
        self._staged, self._staged_counts = [], {}
        errors, self._staged_errors = self._staged_errors, []
        counts, more = self._write(counts, writes, [], full_sync=True, bulk=True)
        self._commit(counts, errors + more, cursor, self._staged_total, pages_counted=True)

    def _finish(self, status: str, error: str | None = None) -> None:
        run_id = self._run_id
        if getattr(self, "_staged", None) and status in ("cancelled", "completed"):
            try:
                self._flush(self._cursor)  # what was read before the cancel is written
            except Exception as exc:
                status, error = "failed", f"{type(exc).__name__}: {exc}"
        self._drop_prefetch()
        if status == "completed":
            missing = shortfall(self.progress.processed, self.progress.total)
            if missing:
                status, error = "incomplete", missing
                self.log.warning("full_sync.incomplete", run_id=run_id, error=missing)
        held = held_error(self.gate.end_run(), self.integration.confirm_share, self.name)
        if status == "completed" and held:
            status, error = "needs_confirmation", held
        self.store.finish_run(run_id, status, error)
        self.progress.state = "idle"
        self.progress.last_error = error
        self.progress.cancel.clear()
        self.log.info(f"full_sync.{status}", run_id=run_id, **self.progress.counts)
        self.realtime.schedule()  # apply what arrived during the run

    # -- applying records ------------------------------------------------------------------

    def _decide(self, records: list[Record]) -> tuple[dict[str, int], list, list, list]:
        """The rules' decisions for a batch: counts of what needs no write, the writes, the
        deletes, and the errors of records the source could not read whole (``error``):
        those fail, retryable, and nothing is decided for them."""
        records, unreadable = split_unreadable(records, self.integration.source)
        for rid, reason, _ in unreadable:
            self.log.warning("record.unreadable", record_id=rid, reason=reason)
        if not records:
            return (*tally([], unreadable=len(unreadable)), unreadable)
        ids = [r.id for r in records]
        links = self.store.links(self.name, ids)
        optouts = self.store.optouts(self.name, ids) if self.rules.consents else {}
        decided = [R.decide(self.rules, record, links.get(record.id), optouts.get(record.id))
                   for record in records]
        counts, writes, deletes = tally(decided, unreadable=len(unreadable))
        self.journal.decided(self.rules, records, links, optouts, decided,
                             full_sync=self.progress.state == "full_sync")  # explain.py
        return counts, writes, deletes, unreadable

    def _apply(self, records: list[Record], *, full_sync: bool
               ) -> tuple[dict[str, int], list[RecordError]]:
        """Decide and write a batch of records; returns counts and per-record errors."""
        counts, writes, deletes, unreadable = self._decide(records)
        counts, errors = self._write(counts, writes, deletes, full_sync=full_sync)
        return counts, unreadable + errors

    def _write(self, counts: dict[str, int], writes: list[R.Write], deletes: list[R.Delete],
               *, full_sync: bool, bulk: bool = False
               ) -> tuple[dict[str, int], list[RecordError]]:
        """Write a batch's decisions (:meth:`syncd.engine.writes.BatchWriter.write`)."""
        return self.writer.write(self.rules, counts, writes, deletes, full_sync=full_sync,
                                 bulk=bulk)
