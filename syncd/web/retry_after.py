"""Retry-After accounting of the emulators (:class:`syncd.web.emulator.Emulator` mixes it in).

A client told to wait (a 429 with ``Retry-After``, recorded by :meth:`remember_retry_after`)
that sends a request of the same scope before the delay has passed is counted as a violation
(``retry_after_violations``, each one in ``retry_after_log``):

- a request that says which Retry-After its sender knew of when it decided to send
  (``X-Syncd-Held-By``: the ``X-Syncd-Request`` ids of requests answered 429, ``-`` for none;
  syncd's client sends it) is judged exactly: a violation iff it arrives before one of those
  Retry-After ends (by this server's clock: when the 429 left plus its delay; 1 ms for the
  header's millisecond rounding), whatever the load. A 429 it does not name had not reached
  its sender: it was in flight;
- a request without it is judged by time: one arriving from ``retry_after_grace`` (50 ms)
  after the 429 left until the Retry-After ends is a violation.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from syncd.connectors.budgets import HELD_BY, REQUEST_ID
from syncd.web.wsgi import Request


class RetryAfterAccounting:
    #: Seconds after a 429 during which a request that does not say which Retry-After its
    #: sender knew of (no ``X-Syncd-Held-By``) is taken as sent before it (in flight).
    retry_after_grace: float = 0.05
    _stats_lock: threading.Lock

    def client_of(self, request: Request) -> str:
        raise NotImplementedError

    def init_retry_after(self) -> None:
        self._not_before: dict[tuple[str, str], tuple[float, float]] = {}
        #: X-Syncd-Request id of a request answered 429 -> (scope, client, until when it holds)
        #: (an id names one request of one client: the client it was given to is not checked)
        self._given: dict[str, tuple[str, str, float]] = {}
        #: each violation: (request id or "", scope, seconds before the Retry-After ended,
        #: "known" (judged by X-Syncd-Held-By) or "time" (by the grace))
        self.retry_after_log: deque[tuple[str, str, float, str]] = deque(maxlen=1000)
        self.retry_after_violations = 0

    def remember_retry_after(self, request: Request, seconds: float, scope: str = "") -> None:
        """This client was told to wait ``seconds``; ``scope`` names a limit that holds only
        some requests (e.g. one endpoint's), "" the whole API."""
        now = time.monotonic()
        client = self.client_of(request)
        request_id = request.header(REQUEST_ID)
        with self._stats_lock:
            _, until = self._not_before.get((scope, client), (0.0, 0.0))
            self._not_before[(scope, client)] = (now, max(until, now + seconds))
            if request_id:
                self._given[request_id] = (scope, client, now + seconds)
                if len(self._given) > 10_000:
                    del self._given[next(iter(self._given))]

    def check_retry_after(self, request: Request, scope: str = "") -> bool:
        """Count (and return True for) a request sent before a Retry-After of ``scope`` ran
        out. A request with ``X-Syncd-Held-By`` is judged by the 429s it names (those its
        sender knew of when it decided to send): early iff it arrives before one of them
        ends (1 ms for the header's millisecond rounding). One without it is judged by time:
        those arriving within ``retry_after_grace`` of the 429 are taken as in flight."""
        now = time.monotonic()
        client = self.client_of(request)
        known = request.header(HELD_BY)
        with self._stats_lock:
            if known is not None:
                for request_id in filter(None, (k.strip() for k in known.split(","))):
                    given = self._given.get(request_id)
                    if given and given[0] == scope and now < given[2] - 0.001:
                        return self._violation(request, scope, given[2] - now, "known")
                return False
            issued, until = self._not_before.get((scope, client), (0.0, 0.0))
            if issued + self.retry_after_grace < now < until - 0.01:
                return self._violation(request, scope, until - now, "time")
        return False

    def _violation(self, request: Request, scope: str, early: float, how: str) -> bool:
        self.retry_after_violations += 1
        self.retry_after_log.append((request.header(REQUEST_ID) or "", scope, early, how))
        return True
