"""A connection's two lanes: real-time work never waits behind bulk work.

A connection whose connector declares :attr:`~syncd.connectors.connector.Connector.two_lanes`
runs two :class:`~syncd.connectors.connection.ConnectionActor` on the *same* connector
instance (so one HTTP client, one rate budget, one set of ``Retry-After`` holds, one token):

- the **bulk** lane (:data:`BULK`): full-sync pages and writes, bulk imports, a dry run's
  profile reads, consent-change polling, engagement exports, daily creation, overviews;
- the **real-time** lane (:data:`REALTIME`): the inbox drain's read-backs and writes (and
  the direct reads and deletes it makes), and consent write-back.

Which lane a call takes is the caller's choice (the coordinator's real-time part asks the
real-time lane's proxy, everything else the bulk lane's). A connector that does not declare
it has one lane: both names give the same actor, every call in turn.

A connector's worker pool is per lane (:class:`LanePools`), so a real-time write never queues
behind a bulk batch's tasks either; :func:`current` tells the connector which lane it runs in
(the connection actor sets it around each call; :func:`syncd.plugin.carry_context` carries it
into pool workers). :class:`LaneState` is what ``syncd status`` shows of a lane without
asking its actor (which may be busy for minutes with an import).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

Lane = Literal["bulk", "realtime"]
BULK: Lane = "bulk"
REALTIME: Lane = "realtime"
LANES: tuple[Lane, ...] = (BULK, REALTIME)

_lane: ContextVar[Lane] = ContextVar("syncd_lane", default=BULK)


def current() -> Lane:
    """The lane the calling code runs in (:data:`BULK` outside any connection actor)."""
    return _lane.get()


@contextlib.contextmanager
def running_in(lane: Lane) -> Iterator[None]:
    token = _lane.set(lane)
    try:
        yield
    finally:
        _lane.reset(token)


@dataclass
class LaneState:
    """What one lane is doing, readable from any thread: the call it runs (and since when),
    how many calls it ran. Its queue length is read from its actor's inbox."""

    lane: Lane
    call: str | None = None
    since: float | None = None
    calls: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @contextlib.contextmanager
    def running(self, call: str) -> Iterator[None]:
        with self._lock:
            self.call, self.since = call, time.time()
        try:
            yield
        finally:
            with self._lock:
                self.call, self.since = None, None
                self.calls += 1

    def view(self, queued: int) -> dict[str, Any]:
        """``{"call", "for_s", "queued", "calls"}`` for ``syncd status``."""
        with self._lock:
            call, since, calls = self.call, self.since, self.calls
        return {"call": call, "for_s": None if since is None else round(time.time() - since, 1),
                "queued": queued, "calls": calls}


def realtime_workers(workers: int) -> int:
    """The real-time lane's workers for a connection of ``workers`` (its ``concurrency``):
    a quarter, at least one. Real-time batches are small; the connection then has at most
    ``workers + realtime_workers(workers)`` requests in flight."""
    return max(1, int(workers) // 4)


class LanePools:
    """A connector's worker pools, one per lane, made on first use and shut down together:
    ``get()`` is the pool of the lane the caller runs in. The bulk lane's has ``workers``
    threads, the real-time lane's :func:`realtime_workers` of them."""

    def __init__(self, workers: int, prefix: str):
        self.workers = max(1, int(workers))
        self.sizes: dict[Lane, int] = {BULK: self.workers,
                                       REALTIME: realtime_workers(self.workers)}
        self.prefix = prefix
        self._pools: dict[Lane, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()

    def get(self) -> ThreadPoolExecutor:
        lane = current()
        with self._lock:
            pool = self._pools.get(lane)
            if pool is None:
                pool = self._pools[lane] = ThreadPoolExecutor(
                    self.sizes[lane], thread_name_prefix=f"{self.prefix}-{lane}")
            return pool

    def shutdown(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.shutdown(wait=True)
