"""Group commit: work that arrives together is committed in one transaction.

With ``synchronous=FULL`` every SQLite commit waits for the disk (about 4k commits/s here),
so one commit per webhook caps ingest near that and makes requests queue behind each other's
flushes. :class:`GroupCommit` lets the first caller that finds nobody committing become the
leader: it takes every item queued so far (its own included), commits them in one call, and
hands each caller its own result. Callers that arrive meanwhile wait, and the next of them
leads the following batch. An idle system adds no latency (a lone caller leads at once), and
no caller returns before the transaction holding its item has committed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Slot:
    __slots__ = ("done", "error", "item", "value")

    def __init__(self, item: Any):
        self.item = item
        self.done = False
        self.value: Any = None
        self.error: BaseException | None = None


class GroupCommit(Generic[T, R]):
    """``submit(item)`` returns ``commit([... item ...])``'s result for ``item``.

    ``commit`` gets a batch and returns one result per item, in order, or raises; then every
    caller of that batch gets the error (as ``wrap(error)`` for the callers other than the
    leader, so that no two threads raise the same exception object).
    """

    def __init__(self, commit: Callable[[Sequence[T]], Sequence[R]],
                 wrap: Callable[[BaseException], BaseException] = lambda e: e):
        self._commit = commit
        self._wrap = wrap
        self._cond = threading.Condition()
        self._queue: list[_Slot] = []
        self._busy = False
        #: Sizes of the batches committed (the last 1,000), for benchmarks and tests.
        self.batches: list[int] = []

    def submit(self, item: T) -> R:
        slot = _Slot(item)
        with self._cond:
            self._queue.append(slot)
            while self._busy and not slot.done:
                self._cond.wait()
            if slot.done:  # a leader committed it
                if slot.error is not None:
                    raise self._wrap(slot.error)
                return slot.value
            self._busy = True  # lead: commit everything queued so far
            batch, self._queue = self._queue, []
        try:
            results = self._commit([s.item for s in batch])
            for s, value in zip(batch, results, strict=True):
                s.value = value
        except BaseException as exc:
            for s in batch:
                s.error = exc
            raise
        finally:
            with self._cond:
                for s in batch:
                    s.done = True
                self._busy = False
                self.batches.append(len(batch))
                del self.batches[:-1000]
                self._cond.notify_all()
        return slot.value
