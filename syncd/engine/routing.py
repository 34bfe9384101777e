"""Which lane of its connections a coordinator's work calls (:mod:`syncd.connectors.lanes`):
its real-time part and consent write-back the real-time lanes, everything else (full-sync
pages and writes, imports, dry runs, consent polls, exports, daily creation, overviews) the
bulk lanes. Held by the coordinator as ``coordinator.lanes``; the coordinator's ``source``
and ``destination`` are the proxies of the lane of the work running."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from syncd.connectors.connection import ConnectionProxy
from syncd.connectors.lanes import BULK, REALTIME, Lane


class LaneRouting:
    """``connection(name)`` gives a connection's bulk lane, ``realtime(name)`` its real-time
    lane (the same actor for a connection with one lane); :meth:`using` sets the lane of the
    work running (the coordinator is one thread: no lock)."""

    def __init__(self, connection: Callable[[str], ConnectionProxy],
                 realtime: Callable[[str], ConnectionProxy] | None = None):
        self._connection = connection
        self._realtime = realtime or connection
        #: The lane the running work calls.
        self.lane: Lane = BULK

    @contextlib.contextmanager
    def using(self, lane: Lane) -> Iterator[None]:
        before, self.lane = self.lane, lane
        try:
            yield
        finally:
            self.lane = before

    def proxy(self, name: str) -> ConnectionProxy:
        """Connection ``name``'s proxy in the lane of the work running."""
        return (self._realtime if self.lane == REALTIME else self._connection)(name)
