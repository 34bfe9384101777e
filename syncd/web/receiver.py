"""The webhook receiver: a WSGI app that persists each delivery before it answers 2xx.

``POST /webhooks/{connection}``, in this order:

1. draining (SIGTERM) → 503 + ``Retry-After`` so the sender retries against the next process;
2. unknown connection → 404;
3. body over ``max_body`` → 413, decided from ``Content-Length`` before anything is read, and
   enforced again while reading (at most ``max_body + 1`` bytes are ever read);
4. the connection's parser checks the signature over the raw body and returns events;
   :class:`~syncd.exceptions.WebhookRejected` → its status (401, 400 ...), anything else → 400;
5. one :meth:`Store.enqueue` transaction for every (integration, event); a
   :class:`~syncd.engine.store.StoreError` → 503 + ``Retry-After``, never 2xx;
6. 200 ``{"accepted": n}``; the ``notify`` callback runs once the answer is written.

Deliveries with events for a connection whose integrations are all disabled are answered 503
+ ``Retry-After`` after step 4, so that the sender keeps them until one is enabled again.

Bodies and headers are never logged: they carry signatures, tokens and personal data. A
rejection is logged at most ``LOG_LINES`` times per reason per ``LOG_INTERVAL`` seconds (the
next line after a quiet spell says how many were not logged), its texts cut short; the exact
counts per reason are in :meth:`WebhookApp.stats` and so in ``syncd status``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import structlog

from syncd import metrics
from syncd.connectors.connector import WebhookParser
from syncd.engine.store import Store, StoreError
from syncd.exceptions import WebhookRejected
from syncd.records import Event
from syncd.web.wsgi import HTTPError, Request, Router, ServerThread, respond

log = structlog.get_logger("syncd.web.receiver")

RETRY_AFTER = "5"
RETRY_AFTER_DISABLED = "300"
_READ_CHUNK = 65536
LOG_LINES = 10  # rejection lines logged per reason ...
LOG_INTERVAL = 60.0  # ... per this many seconds
_EXCERPT = 200  # characters of a reason or name in a log line


def _cut(text: str, limit: int = _EXCERPT) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


class LogLimiter:
    """At most ``lines`` log lines per key per ``interval`` seconds; counts what it holds back."""

    def __init__(self, lines: int = LOG_LINES, interval: float = LOG_INTERVAL,
                 clock: Callable[[], float] = time.monotonic):
        self.lines, self.interval, self.clock = lines, interval, clock
        self._windows: dict[str, list[float]] = {}  # key -> [start, logged, held back]
        self._lock = threading.Lock()

    def allow(self, key: str) -> tuple[bool, int]:
        """Whether to log this one, and how many were held back before it (reported once)."""
        now = self.clock()
        with self._lock:
            window = self._windows.get(key)
            if window is None or now - window[0] >= self.interval:
                held = int(window[2]) if window else 0
                self._windows[key] = [now, 1, 0]
                return True, held
            if window[1] < self.lines:
                window[1] += 1
                return True, 0
            window[2] += 1
            return False, 0


@dataclass(frozen=True)
class Route:
    """Where deliveries for one connection go: its parser and the integrations it feeds."""

    connection: str
    parser: WebhookParser
    integrations: tuple[str, ...]
    #: Disabled integrations fed by this connection: with no enabled one, deliveries are
    #: answered 503 + Retry-After (the sender keeps them), never 200 and dropped.
    disabled: tuple[str, ...] = ()
    #: The connector's :meth:`~syncd.connectors.connector.Connector.webhook_handshake`, if it has one:
    #: ``(query, headers) -> (status, body, content_type) | None``. An answer is sent as it
    #: is and nothing is queued (e.g. a subscription's validation handshake).
    handshake: Callable[[Mapping[str, list[str]], Mapping[str, str]],
                        tuple[int, str, str] | None] | None = None
    #: Connections that follow this one (:meth:`Connector.follows`): an accepted delivery's
    #: events are handed to them too (the app's ``follow`` callback), after the answer.
    followers: tuple[str, ...] = ()


class _Headers(dict):
    """Request headers with case-insensitive lookup (parsers ask for ``x-signature`` or
    ``X-Signature``); iteration yields the canonical ``Title-Case`` names."""

    def __init__(self, headers: Mapping[str, str]):
        super().__init__(headers)
        self._lower = {k.lower(): v for k, v in headers.items()}

    def __getitem__(self, key: str) -> str:
        return self._lower[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._lower

    def get(self, key: str, default: Any = None) -> Any:
        return self._lower.get(key.lower(), default)


class _Answer:
    """A response body whose ``close()`` (called by the server after the answer is written)
    runs ``after``. The callback is guarded: nothing it raises reaches the server."""

    def __init__(self, chunks: list[bytes], after: Callable[[], None]):
        self._chunks = chunks
        self._after: Callable[[], None] | None = after

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._chunks)

    def close(self) -> None:
        after, self._after = self._after, None
        if after is not None:
            try:
                after()
            except Exception as exc:
                log.error("webhook.notify_failed", error=f"{type(exc).__name__}: {exc}")


class WebhookApp:
    """The receiver's WSGI app. ``notify`` is called with the names of the integrations that
    got new events, after their commit; ``follow(connection, followers, events)`` with a
    route's followers and the events it accepted; both must be quick (the daemon sends
    actor messages)."""

    def __init__(self, store: Store, max_body: int,
                 notify: Callable[[list[str]], None] | None = None,
                 log_limiter: LogLimiter | None = None,
                 follow: Callable[[str, tuple[str, ...], list[Event]], None] | None = None):
        self.store = store
        self.max_body = max_body
        self.notify = notify
        self.follow = follow
        #: Set on SIGTERM: new deliveries get 503 + Retry-After, running ones finish.
        self.draining = False
        self._routes: Mapping[str, Route] = MappingProxyType({})
        self._lock = threading.Lock()
        self._received = 0
        self._accepted_deliveries = 0
        self._accepted_events = 0
        self._rejected: dict[int, int] = {}
        self._reasons: dict[str, int] = {}
        self._log_limiter = log_limiter or LogLimiter()
        self.router = Router()
        self.router.add("POST", "/webhooks/{connection}", self._webhook)
        self.router.add("GET", "/healthz", self._healthz)

    # -- routes and counters ---------------------------------------------------------------

    def set_routes(self, routes: Mapping[str, Route]) -> None:
        """Swap the routing table in one assignment: a request sees the old or the new one."""
        self._routes = MappingProxyType(dict(routes))

    @property
    def routes(self) -> Mapping[str, Route]:
        return self._routes

    def stats(self) -> dict[str, Any]:
        """Counters since start: deliveries received, accepted, events queued, rejections by
        status and by reason (exact, however few of them were logged)."""
        with self._lock:
            return {
                "received": self._received,
                "accepted": self._accepted_deliveries,
                "events": self._accepted_events,
                "rejected": dict(self._rejected),
                "reasons": dict(self._reasons),
            }

    def _count(self, status: int, events: int = 0, reason: str | None = None) -> None:
        with self._lock:
            if status == 200:
                self._accepted_deliveries += 1
                self._accepted_events += events
            else:
                self._rejected[status] = self._rejected.get(status, 0) + 1
                if reason is not None:
                    self._reasons[reason] = self._reasons.get(reason, 0) + 1

    # -- WSGI -------------------------------------------------------------------------------

    def __call__(self, environ: dict, start_response):
        request = Request(environ, max_body=self.max_body)
        after = None
        try:
            handler, params = self.router.match(request.method, request.path)
            request.params = params
            status, body, headers, after = handler(request)
        except HTTPError as exc:
            status, body, headers = exc.status, exc.body, exc.headers
        except Exception as exc:  # a bug of ours: never a 2xx, never the body in the log
            log.error("receiver.error", path=request.path[:200],
                      error=f"{type(exc).__name__}: {exc}")
            status, body, headers = 500, {"error": "internal error"}, {}
        headers = dict(headers or {})
        ctype = headers.pop("Content-Type", "application/json")
        chunks = respond(start_response, status, body, headers, ctype)
        return _Answer(list(chunks), after) if after is not None else chunks

    def _healthz(self, request: Request):
        if self.draining:
            return 503, {"status": "draining"}, {"Retry-After": RETRY_AFTER}, None
        return 200, {"status": "ok"}, {}, None

    def _webhook(self, request: Request):
        connection = request.params["connection"]
        with self._lock:
            self._received += 1
        if self.draining:
            return self._reject(connection, 503, "draining", "draining",
                                {"Retry-After": RETRY_AFTER})
        route = self._routes.get(connection)
        if route is None:
            return self._reject(connection, 404, "unknown_connection",
                                f"no webhook connection {connection!r}")
        try:
            raw = self._read_body(request)
        except HTTPError as exc:
            code = "too_large" if exc.status == 413 else "bad_length"
            return self._reject(connection, exc.status, code, exc.body["error"])
        if route.handshake is not None:
            try:
                answer = route.handshake(request.query, _Headers(request.headers))
            except WebhookRejected as exc:
                return self._reject(connection, exc.status, f"rejected_{exc.status}",
                                    exc.reason)
            if answer is not None:
                status, body, ctype = answer
                self._count(status)
                log.info("webhook.handshake", connection=connection, status=status)
                return status, body, {"Content-Type": ctype}, None
        try:
            events = list(route.parser(_Headers(request.headers), raw))
        except WebhookRejected as exc:
            status = exc.status if 400 <= exc.status < 500 else 400
            return self._reject(connection, status, f"rejected_{status}", exc.reason)
        except Exception as exc:  # a parser bug or a body it did not expect
            return self._reject(connection, 400, "malformed", "malformed webhook body",
                                error=type(exc).__name__)
        follow = bool(events and route.followers and self.follow is not None)
        if events and not route.integrations and route.disabled and not follow:
            return self._reject(connection, 503, "integrations_disabled",
                                "every integration fed by this connection is disabled; "
                                "deliver it again later", {"Retry-After": RETRY_AFTER_DISABLED},
                                disabled=",".join(route.disabled))
        items = [(integration, connection, event)
                 for integration in route.integrations for event in events]
        if items:
            try:
                self.store.enqueue(items)
            except StoreError as exc:
                return self._reject(connection, 503, "store_failed", "cannot store the event now",
                                    {"Retry-After": RETRY_AFTER}, error=str(exc))
        accepted = len(events) if items or follow else 0
        self._count(200, accepted)
        for integration in route.integrations if items else ():
            metrics.EVENTS_RECEIVED.labels(integration).inc(len(events))
        log.info("webhook.accepted", connection=connection, status=200, count=accepted,
                 parsed=len(events))
        calls: list[Callable[[], None]] = []
        if items and self.notify is not None:
            names, notify = list(route.integrations), self.notify
            calls.append(lambda: notify(names))
        if follow and self.follow is not None:
            tell = self.follow
            calls.append(lambda: tell(connection, route.followers, events))
        return 200, {"accepted": accepted}, {}, (lambda: _each(calls)) if calls else None

    def _reject(self, connection: str, status: int, code: str, reason: str,
                headers: dict[str, str] | None = None, **fields: str):
        """Answer ``status``; count it under ``code``; log it unless that reason was logged
        ``LOG_LINES`` times this interval."""
        self._count(status, reason=code)
        log_it, held = self._log_limiter.allow(code)
        if log_it:
            extra: dict[str, object] = {"not_logged_before": held} if held else {}
            extra.update({k: _cut(v) for k, v in fields.items()})
            (log.error if code == "store_failed" else log.warning)(
                "webhook.rejected", connection=_cut(connection, 100), status=status, code=code,
                reason=_cut(reason), **extra)
        return status, {"error": reason}, headers or {}, None

    def _read_body(self, request: Request) -> bytes:
        """The raw body, never more than ``max_body`` bytes read into memory."""
        raw_length = request.environ.get("CONTENT_LENGTH")
        length: int | None = None
        if raw_length not in (None, ""):
            try:
                length = int(raw_length)
            except ValueError:
                raise HTTPError(400, {"error": "bad Content-Length"}) from None
            if length < 0:
                raise HTTPError(400, {"error": "bad Content-Length"})
            if length > self.max_body:
                raise HTTPError(413, {"error": f"body over {self.max_body} bytes"})
        # With a Content-Length, read no further than it (PEP 3333); without one, read at
        # most one byte past the limit to know whether the body is over it.
        limit = length if length is not None else self.max_body + 1
        stream = request.environ["wsgi.input"]
        parts: list[bytes] = []
        got = 0
        while got < limit:
            chunk = stream.read(min(_READ_CHUNK, limit - got))
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        if got > self.max_body:
            raise HTTPError(413, {"error": f"body over {self.max_body} bytes"})
        return b"".join(parts)


def start_receiver(app: WebhookApp, host: str = "127.0.0.1", port: int = 0,
                   threads: int = 8, connection_limit: int = 100) -> ServerThread:
    """Serve ``app`` with waitress in a thread. Waitress itself refuses bodies far over the
    limit (it buffers whole requests before the app runs), the app answers the rest. At most
    ``connection_limit`` connections are open at once (more wait in the listen backlog), so
    the memory held for request bodies stays under about ``connection_limit * 2 * max_body``.
    """
    cap = max(app.max_body * 2, app.max_body + 65536)
    # waitress counts its listening socket and its wake-up trigger among the connections
    return ServerThread(app, host, port, threads=threads, name="receiver",
                        max_request_body_size=cap, connection_limit=connection_limit + 2).start()


def _each(calls: list[Callable[[], None]]) -> None:
    """Run every callback; one that raises stops none of the others."""
    for call in calls:
        try:
            call()
        except Exception as exc:
            log.error("webhook.notify_failed", error=f"{type(exc).__name__}: {exc}")
