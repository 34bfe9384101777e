"""The common ground of the partner emulators that connectors ship.

An emulator is a real HTTP server on loopback that plays a partner's API as ``apis.md``
documents it. This module gives them what they share, with no vendor in it:

- :class:`Emulator`: a WSGI app served by waitress in a thread, with a router, a request log,
  faults on demand and a control API under ``/_emulator/``;
- :class:`Faults`: random or scheduled 5xx, 429 with ``Retry-After``, hangs and latency, all
  raised before the handler runs; and "applied, then failed": a write (any method but GET and
  HEAD) that the handler ran and committed, whose answer is then lost: a 5xx instead of it,
  a hang of ``hang_seconds`` then 504 (a client with a shorter timeout sees a timeout), or a
  connection dropped mid-answer (status ``0``). Counted in ``stats()["applied_then_failed"]``;
- Retry-After accounting (:mod:`syncd.web.retry_after`): a request sent before a
  ``Retry-After`` its client was given has passed is counted as a violation
  (``stats()["retry_after_violations"]``), judged by the 429s it says its sender knew of
  (``X-Syncd-Held-By``) or, without that header, by time with a grace;
- gates (``gates``, Python only): a test holds chosen requests open before their handler
  runs, until an event of its own (ordering by events, not by sleeps);
- :class:`TokenIssuer`: expiring bearer tokens for OAuth token endpoints;
- :class:`WebhookSender` (from :mod:`syncd.connectors.webhook_sender`): the webhooks a
  partner calls, delivered in order by a thread with bounded retries; the partner's plugin
  says where each goes and how it is signed (:class:`WebhookDelivery`). An emulator that
  sets ``sender`` has it started and stopped with its server, its counts in ``stats()``.

Control API (JSON): ``GET /_emulator/stats``, ``POST /_emulator/faults`` with any of
``error_rate``, ``throttle_rate``, ``retry_after``, ``hang_rate``, ``hang_seconds``,
``latency``, ``fail_next`` (a list of statuses for the next requests), ``fail_after_rate``
(share of writes applied, then answered 500/502/503), ``fail_after_next`` (a list of
statuses, ``504`` a hang, ``0`` a dropped connection, for the next writes, applied first),
``fail_after_path`` (only writes whose path contains it), ``POST
/_emulator/reset-stats``. Faults never apply to ``/_emulator/`` itself.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import asdict
from typing import Any, Self

from syncd.connectors.webhook_sender import WebhookDelivery as WebhookDelivery
from syncd.connectors.webhook_sender import WebhookSender as WebhookSender
from syncd.web.emulator_parts import Faults as Faults
from syncd.web.emulator_parts import TokenIssuer as TokenIssuer
from syncd.web.retry_after import RetryAfterAccounting
from syncd.web.wsgi import HTTPError, Request, Router, ServerThread, respond


class Emulator(RetryAfterAccounting):
    """Base class of partner emulators. Subclasses add routes in ``setup_routes``."""

    kind = ""
    #: Paths (prefixes) where faults are never injected (e.g. health checks).
    fault_free_prefixes: tuple[str, ...] = ("/_emulator/",)
    #: The partner's webhooks, for an emulator whose partner calls them (set it in
    #: ``__init__``): started before the server, stopped after it.
    sender: WebhookSender | None = None

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, seed: int | None = None,
                 threads: int = 16, max_body: int = 10 * 1024 * 1024):
        self.host = host
        self.port = port
        self.threads = threads
        self.max_body = max_body
        self.rng = random.Random(seed)
        self.faults = Faults()
        self.router = Router()
        self.lock = threading.RLock()
        self._server: ServerThread | None = None
        self._stats_lock = threading.Lock()
        #: (scope, client) -> (when a Retry-After was given, until when it holds)
        self.requests: deque[tuple[float, str, str, int]] = deque(maxlen=10_000)
        self.counts: dict[str, int] = {}
        self.init_retry_after()
        self.applied_then_failed = 0
        #: Called with (request, status) after each answer outside ``/_emulator/``, from the
        #: serving thread: lets a test count what it needs (e.g. the pages of a full sync).
        self.observers: list = []
        #: Called with each request outside ``/_emulator/`` before its handler runs (after
        #: the faults and the Retry-After accounting), from the serving thread: lets a test
        #: hold chosen requests open until an event (e.g. another request has landed).
        self.gates: list = []
        self.router.add("GET", "/_emulator/stats", lambda r: self.stats())
        self.router.add("POST", "/_emulator/faults", self._set_faults)
        self.router.add("POST", "/_emulator/reset-stats", self._reset_stats_route)
        self.setup_routes(self.router)

    # -- to override ----------------------------------------------------------------------

    def setup_routes(self, router: Router) -> None:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> tuple[Any, str]:
        """The partner's error body and content type for ``status``."""
        return {"error": {"code": str(status), "message": message}}, "application/json"

    # -- what the sandbox and the tests ask of an emulator (override what applies) ----------

    def seed(self, count: int, seed: int = 0) -> None:
        """Source emulators: create ``count`` people (deterministic for a ``seed``)."""
        raise NotImplementedError

    def mutate(self, rng: random.Random) -> str:
        """Source emulators: make one change *through the public API* (so webhooks fire, as
        a user's edit in the partner's UI would) and return a line describing it."""
        raise NotImplementedError

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Destination emulators: every profile, by the source id it is keyed on, as a mapping
        of the destination's attribute names to values."""
        raise NotImplementedError

    def client_of(self, request: Request) -> str:
        """Who is asking, for Retry-After accounting and budgets."""
        return request.header("Authorization") or request.environ.get("REMOTE_ADDR", "?")

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> Self:
        if self.sender is not None:
            self.sender.start()
        self._server = ServerThread(self, self.host, self.port, threads=self.threads,
                                    name=f"emulator-{self.kind}")
        self.port = self._server.port
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(timeout=2.0)
            self._server = None
        if self.sender is not None:
            self.sender.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def serve_forever(self, announce=None) -> None:
        """Serve in the foreground until interrupted (``syncd emulate``)."""
        self.start()
        if announce is not None:
            announce(self.url)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    # -- faults and stats ------------------------------------------------------------------

    def set_faults(self, **values: Any) -> None:
        with self._stats_lock:
            for key, value in values.items():
                if not hasattr(self.faults, key):
                    raise ValueError(f"unknown fault {key!r}")
                setattr(self.faults, key,
                        list(value) if key in ("fail_next", "fail_after_next") else value)

    def _set_faults(self, request: Request) -> dict:
        try:
            self.set_faults(**(request.json() or {}))
        except (TypeError, ValueError) as exc:
            raise HTTPError(400, {"error": str(exc)}) from None
        return asdict(self.faults)

    def stats(self) -> dict[str, Any]:
        with self._stats_lock:
            out = {
                "requests": sum(self.counts.values()),
                "by_status": {str(k): v for k, v in sorted(self.counts.items())},
                "retry_after_violations": self.retry_after_violations,
                "applied_then_failed": self.applied_then_failed,
                "faults": asdict(self.faults),
            }
        if self.sender is not None:
            out.update(self.sender.stats())
        return out

    def wait_deliveries(self, timeout: float = 10.0) -> bool:
        """Wait until every queued webhook was delivered or given up; True if so."""
        return True if self.sender is None else self.sender.wait_idle(timeout)

    def deliveries(self) -> list[dict[str, Any]]:
        """Every webhook delivery's outcome: target, url, body, status, attempts, delivered."""
        return [] if self.sender is None else self.sender.log()

    def _reset_stats_route(self, request: Request) -> dict[str, Any]:
        self.reset_stats()
        return {}

    def reset_stats(self) -> None:
        with self._stats_lock:
            self.counts.clear()
            self.requests.clear()
            self.retry_after_violations = 0
            self.retry_after_log.clear()
            self.applied_then_failed = 0

    def retry_after_scope(self, request: Request) -> str:
        """The scope a 429 on ``request`` holds: "" (the whole API) unless the partner
        documents a limit of the endpoint's own (override)."""
        return ""

    def throttle(self, request: Request, retry_after: float,
                 scope: str | None = None) -> HTTPError:
        """An HTTPError 429 with Retry-After, recorded for violation accounting under
        ``scope`` (default: :meth:`retry_after_scope`)."""
        if scope is None:
            scope = self.retry_after_scope(request)
        self.remember_retry_after(request, retry_after, scope)
        body, ctype = self.error_body(429, "Too Many Requests")
        return HTTPError(429, body, {"Retry-After": retry_after_header(retry_after)}, ctype)

    def _inject(self, request: Request) -> None:
        f = self.faults
        with self._stats_lock:
            forced = f.fail_next.pop(0) if f.fail_next else None
            roll = self.rng.random()
        if forced is not None:
            if forced == 429:
                raise self.throttle(request, f.retry_after)
            body, ctype = self.error_body(forced, "injected fault")
            raise HTTPError(forced, body, content_type=ctype)
        if roll < f.error_rate:
            status = self.rng.choice((500, 502, 503))
            body, ctype = self.error_body(status, "injected fault")
            raise HTTPError(status, body, content_type=ctype)
        roll -= f.error_rate
        if roll < f.throttle_rate:
            raise self.throttle(request, f.retry_after)
        roll -= f.throttle_rate
        if roll < f.hang_rate:
            time.sleep(f.hang_seconds)
            body, ctype = self.error_body(504, "injected hang")
            raise HTTPError(504, body, content_type=ctype)

    def _lost_answer(self, request: Request) -> int | None:
        """The fault that replaces the answer of a write the handler has just applied: a
        status (504: after a hang; 0: the connection is dropped), or None."""
        f = self.faults
        if request.method in ("GET", "HEAD") or f.fail_after_path not in request.path:
            return None
        with self._stats_lock:
            if f.fail_after_next:
                status = f.fail_after_next.pop(0)
            elif f.fail_after_rate and self.rng.random() < f.fail_after_rate:
                status = self.rng.choice((500, 502, 503))
            else:
                return None
            self.applied_then_failed += 1
        if status == 504:
            time.sleep(f.hang_seconds)
        return status

    # -- WSGI ------------------------------------------------------------------------------

    def __call__(self, environ, start_response):
        request = Request(environ, max_body=self.max_body)
        control = request.path.startswith(self.fault_free_prefixes)
        status = 500
        try:
            if not control:
                self.check_retry_after(request)
                if self.faults.latency:
                    time.sleep(self.faults.latency)
                self._inject(request)
                for gate in list(self.gates):
                    gate(request)
            handler, params = self.router.match(request.method, request.path)
            request.params = params
            result = handler(request)
            if isinstance(result, tuple):  # (status, body[, headers[, content_type]])
                status, body, *rest = result
                headers = rest[0] if rest else None
                ctype = rest[1] if len(rest) > 1 else "application/json"
            else:
                status, body, headers, ctype = 200, result, None, "application/json"
            lost = None if control or status >= 400 else self._lost_answer(request)
            if lost == 0:  # headers promise a body that never comes: the server hangs up
                status = 0
                start_response("200 OK", [("Content-Type", "application/json"),
                                          ("Content-Length", "4096")])
                return [b'{"partial": ']
            if lost is not None:
                status = lost
                body, ctype = self.error_body(lost, "applied, then failed (injected)")
                return respond(start_response, lost, body, None, ctype)
            return respond(start_response, status, body, headers, ctype)
        except HTTPError as exc:
            status = exc.status
            body, ctype = exc.body, exc.content_type
            if body is None or (isinstance(body, dict) and set(body) == {"error"}
                                and isinstance(body["error"], str)):
                message = body["error"] if body else ""
                body, ctype = self.error_body(exc.status, message)
            return respond(start_response, exc.status, body, exc.headers, ctype)
        finally:
            if not control:
                with self._stats_lock:
                    self.counts[status] = self.counts.get(status, 0) + 1
                    self.requests.append((time.time(), request.method, request.path, status))
                for observe in list(self.observers):
                    observe(request, status)


def retry_after_header(seconds: float) -> str:
    """A Retry-After value: whole seconds as an integer, else milliseconds precision."""
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:.3f}"
