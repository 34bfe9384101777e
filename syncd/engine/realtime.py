"""The real-time path of a coordinator, as an object it holds (``coordinator.realtime``):
events the receiver stored in the inbox are read back from the source in batches, decided and
written; failures are retried with back-off, and an event that fails for good becomes a dead
letter with its reason. A batch the source refuses for good is split in halves, so that only
the event that causes it becomes a dead letter. Its read-backs and writes take the
connections' real-time lanes (:mod:`syncd.connectors.lanes`). A retry waits on the coordinator's timer
``drain`` (:mod:`syncd.engine.timers`), which tells the coordinator its ``drain`` message.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from syncd import metrics
from syncd.connectors.lanes import REALTIME
from syncd.engine.attribution import dead_or_retry, events_answered
from syncd.engine.failfast import FailedFast
from syncd.engine.jobs import CALL_TIMEOUT
from syncd.engine.store import InboxItem
from syncd.exceptions import RemoteError
from syncd.records import Record

if TYPE_CHECKING:
    from syncd.engine.coordinator import Coordinator

#: The key of the drain's timer.
DRAIN = "drain"


class RealTime:
    """Held by a :class:`syncd.engine.coordinator.Coordinator` (``coordinator.realtime``),
    which provides store, integration, progress, source, log, timers, journal, the writes
    (``_apply``) and the fail-fast pause, and passes its ``drain`` message on to
    :meth:`drain`."""

    def __init__(self, coordinator: Coordinator):
        self.c = coordinator
        #: A ``drain`` message is on its way: another one now would find nothing new.
        self._scheduled = False

    def drain(self) -> None:
        c = self.c
        self._scheduled = False
        if c.progress.state == "full_sync":
            return  # held until the full sync ends
        if c.progress.paused:
            return  # fail-fast: the events wait in the inbox for a reload or a sync start
        if c.progress.reloading.is_set():
            return  # a reload applies a new config: the events wait, then apply under it
        try:
            with c.lanes.using(REALTIME):  # the connections' real-time lanes (lanes.py)
                busy = self._drain_batch()
        except FailedFast as exc:
            c.failfast.pause(str(exc))
            return
        except Exception as exc:  # never let a bug in one batch stop the actor
            c.log.exception("realtime.batch_crashed")
            c.progress.last_error = f"{type(exc).__name__}: {exc}"
            busy = False
            self.schedule(delay=5.0)
        if busy:
            self.schedule()
        else:
            due = c.store.next_due(c.name)
            if due is not None:
                self.schedule(delay=max(0.05, due - time.time()))

    def schedule(self, delay: float = 0.0) -> None:
        """Drain now (a message to the coordinator) or after ``delay`` seconds (its timer,
        which replaces an earlier one)."""
        proxy = self.c._self
        if delay <= 0:
            if not self._scheduled:
                self._scheduled = True
                proxy.drain.defer()
            return
        self.c.timers.call_later(DRAIN, delay, proxy.drain.defer)

    def _drain_batch(self) -> bool:
        """Apply one batch of pending events; True if more may be waiting."""
        c = self.c
        items = c.store.pending(c.name, limit=c.integration.batch_size)
        if not items:
            return False
        full = len(items) >= c.integration.batch_size
        records, failures = self._read_back(items)
        c.journal.read_back(c.integration.source, records, failures,  # explain.py
                            via=c.source)
        for failed_items, reason, retryable in failures:
            self._fail(failed_items, reason, retryable=retryable)
        if failures:
            gone = {i.id for failed_items, _, _ in failures for i in failed_items}
            items = [i for i in items if i.id not in gone]
            if not items:
                return True
        latest: dict[str, Record] = {}
        for record in records:
            latest[record.id] = record
        counts, errors = c._apply(list(latest.values()), full_sync=False)
        done, by_error = events_answered(items, latest.keys(), errors)  # attribution.py
        c.store.mark_done(done)
        c.progress.events_applied += len(done)
        metrics.EVENTS_APPLIED.labels(c.name).inc(len(done))
        for (reason, retryable), failed_items in by_error.items():
            self._fail(failed_items, reason, retryable=retryable)
        c.log.debug("realtime.applied", events=len(items), **counts)
        return full

    def _read_back(self, items: list[InboxItem]
                   ) -> tuple[list[Record], list[tuple[list[InboxItem], str, bool]]]:
        """Read back the records ``items`` name: the records, and the failed items with
        their reason. A batch refused for good (a non-retryable error) is split in halves
        and each read again, so that only the event that causes it becomes a dead letter;
        a retryable error keeps the batch together (it is tried again as a whole)."""
        c = self.c
        where = f"reading back from {c.integration.source}"
        try:
            return c.source.read_records([i.event for i in items]
                                            ).get(timeout=CALL_TIMEOUT), []
        except RemoteError as exc:
            if exc.retryable or len(items) == 1:
                return [], [(items, f"{where}: {exc}", exc.retryable)]
            c.log.info("realtime.batch_split", events=len(items), reason=str(exc))
            half = len(items) // 2
            first, first_failed = self._read_back(items[:half])
            second, second_failed = self._read_back(items[half:])
            return first + second, first_failed + second_failed
        except Exception as exc:
            return [], [(items, f"{where}: {type(exc).__name__}: {exc}", True)]

    def _fail(self, items: list[InboxItem], reason: str, *, retryable: bool) -> None:
        c = self.c
        c.progress.events_failed += len(items)
        metrics.EVENTS_FAILED.labels(c.name).inc(len(items))
        c.progress.last_error = reason
        dead, retry = dead_or_retry(items, c.integration.max_attempts, retryable)
        if dead:
            c.store.mark_dead(dead, reason)
            c.progress.dead_letters += len(dead)
            metrics.EVENTS_DEAD.labels(c.name).inc(len(dead))
            c.log.error("event.dead_letter", events=dead, reason=reason)
        for item, delay in retry:
            c.store.mark_retry([item.id], reason, delay)
            c.log.warning("event.retry", event_id=item.id, record_id=item.event.record_id,
                             reason=reason, delay=delay)

