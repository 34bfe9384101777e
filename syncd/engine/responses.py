"""The response-data job of one integration: engagement events from the destination (APSIS
One's e-mail and SMS exports) written to the matching CRM records, each exactly once.

A run (``syncd runs``, kind ``responses``), started by the scheduler every
``responses_interval`` seconds or by ``syncd responses run NAME``:

1. *read*: ``read_engagement(cursor)`` on the destination, one step per message: an export
   not ready yet (requested, pending, or held by APSIS' 1-a-minute limit) is asked again after
   the ``retry_in`` it gives, by the coordinator's timer ``responses_step``; the coordinator meanwhile handles real-time events;
2. *decide*: only the types of ``response_events``, once each by their dedupe key
   ``(correlation_id, type, profile, time)``; events of a profile without a CRM id are counted
   (``unmatched``); events already ``written`` (or ``skipped``) in the store are dropped;
3. *write*, ``responses_batch`` events per message to the coordinator itself, paced to
   ``responses_rate`` events a second, so a week's backlog drains while real-time events
   still pass between two batches: the events are marked ``sending`` in the store, then
   written (``write_engagement``), then marked ``written``. Events left ``sending`` by an
   earlier run (a lost answer, a SIGKILL) are passed as ``uncertain``: the CRM connector looks
   them up (by their external id) before it writes;
4. *finish*: the cursor moves to the export's end only when every event of it was written
   (or skipped for good); otherwise it stays, and the next run reads the window again, its
   written events dropped in step 2. A SIGKILL anywhere loses nothing (the cursor did not
   move) and duplicates nothing (the store or the CRM's external id says what was written).

Counts per event type and the dropped rows go to the run's named counts; per-record errors
to its errors, as for full syncs.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from syncd.connectors.connector import Capability
from syncd.engagement import EngagementBatch, EngagementEvent, wanted

if TYPE_CHECKING:
    from syncd.engine.coordinator import Coordinator

log = structlog.get_logger("syncd.engine.responses")

KIND = "responses"
CURSOR = "responses"
CALL_TIMEOUT = 600.0
#: A run gives up on an export that is not ready after this many waits.
MAX_WAITS = 120
#: The key of the timer of the next step.
STEP = "responses_step"
#: Written events are remembered this long past the cursor (exports may repeat old rows).
REMEMBER = timedelta(days=8)


@dataclass
class _Run:
    id: int
    cursor: str | None
    events: list[EngagementEvent] | None = None
    next_cursor: str | None = None
    uncertain: set[str] = field(default_factory=set)
    waits: int = 0
    failed_retryable: int = 0
    written: int = 0
    started: float = field(default_factory=time.monotonic)


class ResponseData:
    """Owned by a coordinator (its ``store``, ``name``, ``integration``, ``source``,
    ``destination``, ``capabilities`` and actor proxy); runs in the coordinator's thread."""

    def __init__(self, owner: Coordinator):
        self.owner = owner
        self._run: _Run | None = None
        #: seconds between the cursor and now at the last read (for ``syncd status``)
        self.lag: float | None = None

    # -- what the coordinator calls ------------------------------------------------------------

    def enabled(self) -> bool:
        caps = self.owner.capabilities
        return bool(self.owner.integration.response_events) and \
            Capability.READ_RESPONSES in caps.get("destination", ()) and \
            Capability.WRITE_RESPONSES in caps.get("source", ())

    @property
    def running(self) -> int | None:
        return self._run.id if self._run else None

    def start(self, params: dict[str, Any]) -> int | None:
        """Start a run unless one is going; returns its id (None when not enabled)."""
        if not self.enabled():
            raise ValueError(f"{self.owner.name} writes no response data (set "
                             "response_events; the source must write responses and the "
                             "destination read them)")
        if self._run is not None:
            log.info("responses.already_running", integration=self.owner.name,
                     run_id=self._run.id)
            return self._run.id
        cursor = self.owner.store.cursor(self.owner.name, CURSOR)
        run_id = self.owner.store.start_run(self.owner.name, KIND, cursor=cursor)
        self._run = _Run(run_id, cursor)
        log.info("responses.started", integration=self.owner.name, run_id=run_id, cursor=cursor)
        self._next(0.0)
        return run_id

    def stop(self) -> None:
        self.owner.timers.cancel(STEP)

    def step(self) -> None:
        run = self._run
        if run is None:
            return
        try:
            if run.events is None:
                self._read(run)
            else:
                self._write(run)
        except Exception as exc:
            log.exception("responses.failed", integration=self.owner.name, run_id=run.id)
            self._finish(run, "failed", f"{type(exc).__name__}: {exc}")

    # -- steps ---------------------------------------------------------------------------------

    def _next(self, delay: float) -> None:
        """The next step: a message to the coordinator now, or its timer's after ``delay``."""
        proxy = self.owner.actor_ref.proxy()
        if delay <= 0:
            proxy.responses_step.defer()
            return
        self.owner.timers.call_later(STEP, delay, proxy.responses_step.defer)

    def _read(self, run: _Run) -> None:
        store, name = self.owner.store, self.owner.name
        batch: EngagementBatch = self.owner.destination.read_engagement(
            run.cursor).get(timeout=CALL_TIMEOUT)
        if batch.lag is not None:
            self.lag = batch.lag
        if not batch.ready:
            run.waits += 1
            if run.waits > MAX_WAITS:
                self._finish(run, "failed", f"the export was not ready after {run.waits} "
                             "tries (the cursor stays; the next run asks again)")
                return
            self._next(max(0.05, min(batch.retry_in, 60.0)))
            return
        events, dropped = wanted(batch.events, self.owner.integration.response_events)
        unmatched = [e for e in events if not e.key]
        events = [e for e in events if e.key]
        states = store.response_states(name, [e.dedupe for e in events])
        done = {d for d, s in states.items() if s in ("written", "skipped", "failed")}
        run.uncertain = {d for d, s in states.items() if s == "sending"}
        run.events = [e for e in events if e.dedupe not in done]
        run.next_cursor = batch.cursor
        counts = {**dict(batch.counts), **dropped, "unmatched": len(unmatched),
                  "already_written": len(events) - len(run.events),
                  "exported": len(batch.events)}
        store.count_run(run.id, counts)
        store.progress_run(run.id, {}, total=len(run.events))
        if unmatched:
            log.info("responses.unmatched", integration=name, run_id=run.id,
                     count=len(unmatched))
        log.info("responses.read", integration=name, run_id=run.id, to_write=len(run.events),
                 uncertain=len(run.uncertain), **counts)
        self._next(0.0)

    def _write(self, run: _Run) -> None:
        store, name, cfg = self.owner.store, self.owner.name, self.owner.integration
        assert run.events is not None
        chunk, run.events = run.events[:cfg.responses_batch], run.events[cfg.responses_batch:]
        if not chunk:
            self._finish(run, "completed")
            return
        began = time.monotonic()
        rows = {e.dedupe: (e.dedupe, e.key, e.type, e.at) for e in chunk}
        store.mark_responses(name, rows.values(), "sending", run.id)  # before the write
        uncertain = frozenset(run.uncertain & rows.keys())
        results = self.owner.source.write_engagement(chunk, uncertain
                                                     ).get(timeout=CALL_TIMEOUT)
        by_state: dict[str, list] = {"written": [], "skipped": [], "failed": []}
        counts: Counter[str] = Counter(processed=len(chunk))
        types: Counter[str] = Counter()
        errors = []
        for event, result in zip(chunk, results, strict=True):
            row = rows[event.dedupe]
            if result.outcome in ("created", "updated", "unchanged"):
                by_state["written"].append(row)
                counts["created" if result.outcome == "created" else "unchanged"] += 1
                types[event.type] += 1
            elif result.outcome == "skipped":
                by_state["skipped"].append(row)
                counts["skipped"] += 1
                types["not_in_crm"] += 1
            else:
                counts["failed"] += 1
                errors.append((event.key, f"{event.type} at {event.at}: "
                               f"{result.reason or 'failed'}", result.retryable))
                if result.retryable:  # stays 'sending': looked up first next time
                    run.failed_retryable += 1
                else:
                    by_state["failed"].append(row)
        for state, done in by_state.items():
            if done:
                store.mark_responses(name, done, state, run.id)
        store.progress_run(run.id, dict(counts), errors=errors)
        store.count_run(run.id, types)
        run.written += len(by_state["written"])
        if not run.events:
            self._finish(run, "completed")
            return
        pause = len(chunk) / cfg.responses_rate - (time.monotonic() - began) \
            if cfg.responses_rate > 0 else 0.0
        self._next(pause)

    def _finish(self, run: _Run, status: str, error: str | None = None) -> None:
        store, name = self.owner.store, self.owner.name
        if status == "completed" and run.failed_retryable:
            error = (f"{run.failed_retryable} events could not be written (retryable): the "
                     "cursor stays, the next run writes them")
        elif status == "completed" and run.next_cursor is not None:
            store.set_cursor(name, CURSOR, run.next_cursor)
            self.lag = lag_of(run.next_cursor)
            forget = before(run.next_cursor, REMEMBER)
            if forget:
                store.prune_responses(name, forget)
        store.finish_run(run.id, status, error)
        self._run = None
        log.info(f"responses.{status}", integration=name, run_id=run.id, written=run.written,
                 seconds=round(time.monotonic() - run.started, 3), error=error)


def _parse(cursor: str | None) -> datetime | None:
    if not cursor:
        return None
    try:
        value = datetime.fromisoformat(cursor.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def lag_of(cursor: str | None, now: datetime | None = None) -> float | None:
    """Seconds between an ISO cursor and now (None when the cursor is not a time)."""
    value = _parse(cursor)
    if value is None:
        return None
    return max(0.0, ((now or datetime.now(UTC)) - value).total_seconds())


def before(cursor: str | None, delta: timedelta) -> str | None:
    value = _parse(cursor)
    if value is None:
        return None
    return (value - delta).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def responses_status(store: Any, integration: Any, jobs: list[dict[str, Any]]
                     ) -> dict[str, Any] | None:
    """For ``syncd status``: the next response-data run, the export lag (seconds between
    the cursor and now) and the latest run; None when the integration writes none."""
    if not integration.response_events:
        return None
    cursor = store.cursor(integration.name, CURSOR)
    job = next((j for j in jobs if j.get("integration") == integration.name
                and j.get("kind") == KIND), None)
    latest = store.latest_run(integration.name, KIND)
    return {"next_run": job.get("next_run") if job else None, "cursor": cursor,
            "export_lag": lag_of(cursor),
            "last_run": {k: latest[k] for k in ("id", "status", "created", "failed")}
            if latest else None}
