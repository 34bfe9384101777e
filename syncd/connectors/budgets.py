"""Rate budgets and Retry-After holds: how a connection stays under a partner's limits
(used by :class:`syncd.connectors.httpclient.HttpClient`)."""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Callable

#: Header: the id of an attempt (unique in the process and, by its prefix, across processes).
REQUEST_ID = "X-Syncd-Request"
#: Header: the ids of the attempts whose Retry-After holds the request waited out ("-" for
#: none): the holds its sender had recorded when it decided to send (read at the last check
#: of the holds, right before the send).
HELD_BY = "X-Syncd-Held-By"


class RateBudget:
    """A token bucket shared by the threads of one connection: ``rate`` per second, ``burst``."""

    def __init__(self, rate: float, burst: float | None = None, clock=time.monotonic):
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, rate))
        self._tokens = self.burst
        self._clock = clock
        self._stamp = clock()
        self._lock = threading.Lock()

    def reserve(self, cost: float = 1.0) -> float:
        """Take ``cost`` tokens; return how long the caller must wait before using them."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= cost
            if self._tokens >= 0:
                return 0.0
            return -self._tokens / self.rate

    def acquire(self, cost: float = 1.0) -> None:
        delay = self.reserve(cost)
        if delay > 0:
            time.sleep(delay)


class KeyedRateBudget:
    """One :class:`RateBudget` per key (e.g. APSIS' 10 requests/s per profile key)."""

    def __init__(self, rate: float, burst: float | None = None, max_keys: int = 10_000):
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._budgets: dict[str, RateBudget] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str, cost: float = 1.0) -> None:
        with self._lock:
            budget = self._budgets.get(key)
            if budget is None:
                if len(self._budgets) >= self.max_keys:
                    self._budgets.clear()  # idle buckets are full anyway: forgetting is safe
                budget = self._budgets[key] = RateBudget(self.rate, self.burst)
        budget.acquire(cost)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Holds:
    """The ``Retry-After`` holds of one account, by scope, shared by every client of it.

    A hold of scope ``""`` (a 429 or 503 that names no narrower scope) holds *every* request
    of the account; a hold of another scope (an endpoint with a limit of its own, e.g. an
    export's 1 a minute) holds only the requests of that scope. A request of scope ``s``
    waits for the holds of ``""`` and ``s``.

    Each hold remembers ``by``, the id of the request whose answer began it: :meth:`wait`
    returns the ids of the latest holds it waited out, so a request can tell the server which
    ``Retry-After`` its sender knew of when it decided to send (see ``HELD_BY`` in
    :mod:`syncd.connectors.httpclient`)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._until: dict[str, float] = {}
        self._by: dict[str, str] = {}
        self._lock = threading.Lock()

    def hold(self, seconds: float, scope: str = "", by: str = "") -> None:
        with self._lock:
            until = self._clock() + seconds
            if until > self._until.get(scope, 0.0):
                self._until[scope] = until
                self._by[scope] = by

    def _remaining(self, scope: str) -> float:
        until = max(self._until.get("", 0.0), self._until.get(scope, 0.0) if scope else 0.0)
        return max(0.0, until - self._clock())

    def remaining(self, scope: str = "") -> float:
        """Seconds until a request of ``scope`` may leave (0 when it may now)."""
        with self._lock:
            return self._remaining(scope)

    def wait(self, scope: str = "", sleep: Callable[[float], None] = time.sleep) -> list[str]:
        """Return once no hold covers ``scope`` (a hold taken while sleeping is waited too):
        the ids (``by``) of the latest holds of ``""`` and ``scope``, read under the same lock
        as the check that found them over, so nothing recorded before the return is missed."""
        while True:
            with self._lock:
                delay = self._remaining(scope)
                if delay <= 0:
                    return [b for s in dict.fromkeys(("", scope)) if (b := self._by.get(s))]
            sleep(delay)
