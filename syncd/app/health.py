"""Health that means something: liveness, readiness, and the watchdog's condition.

- ``/healthz`` (liveness): 200 while the process serves HTTP at all.
- ``/readyz`` (readiness): 200 only when the state store takes a write, every enabled
  integration's connections run (both lanes of one that has two, :mod:`syncd.connectors.lanes`)
  and passed their last preflight (:mod:`syncd.app.daemon_preflight`,
  ``daemon.preflights``), no integration is held by the guard or paused by fail-fast, and
  every coordinator runs; otherwise 503 with the reasons (:func:`readiness`).
- The systemd watchdog is pinged only while :class:`Liveness` finds that the actors answer
  (each lane of a connection is an actor of its own; an outstanding ping is not older than
  :data:`ACTOR_HANG`) and the receiver answers its
  ``/healthz`` (within :data:`RECEIVER_HANG`). A supervised actor that died is not "hung":
  supervision restarts it; one that is alive but never answers is what the watchdog is for.

These routes and ``/metrics`` are served without the admin token by :class:`OpsApp`: on
the loopback-only admin listener, and on ``[admin] metrics_port`` when set.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any

import pykka
import requests
import structlog

from syncd.app import scrape
from syncd.engine.jobs import CALL_TIMEOUT
from syncd.web.wsgi import Request, respond

log = structlog.get_logger("syncd.app.health")

#: An actor whose ping is unanswered this long is hung: no message of ours blocks an actor
#: longer than a connection call's timeout.
ACTOR_HANG = CALL_TIMEOUT + 30.0
#: The receiver not answering its /healthz for this long is hung.
RECEIVER_HANG = 20.0


def store_writable(path: str, timeout: float = 2.0) -> str | None:
    """None when the store at ``path`` takes a write lock now; else why not."""
    try:
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return f"state store {path} is not writable: {exc}"
    return None


def readiness(daemon: Any) -> list[str]:
    """Why the daemon is not ready; empty when it is."""
    from syncd.engine.guard import guard_status

    cfg, store = daemon.config, daemon.store
    if cfg is None or store is None or not daemon.started.is_set():
        return ["starting"]
    reasons = []
    problem = store_writable(store.path)
    if problem:
        reasons.append(problem)
    for name, integration in cfg.integrations.items():
        if not integration.enabled:
            continue
        sup = daemon.coordinators.get(name)
        if sup is None or not sup.alive():
            reasons.append(f"{name}: its coordinator is restarting")
        for conn in dict.fromkeys((integration.source, integration.destination)):
            csup = daemon.connections.get(conn)
            if csup is not None and not csup.alive():  # either lane (a crash restarts both)
                reasons.append(f"{name}: connection {conn} is restarting")
        pre = daemon.preflights.status(name)
        state = pre.get("state")
        if state in ("pending", "running"):
            reasons.append(f"{name}: the preflight of its connections has not finished")
        elif state != "ok":
            found = pre.get("connection_errors") or pre.get("problems") or [state]
            reasons.append(f"{name}: preflight: {found[0]}")
        progress = daemon.progress.get(name)
        if progress is not None and progress.paused:
            reasons.append(f"{name}: paused by fail-fast: {progress.paused}")
        guard = guard_status(store, integration)
        if guard["held_since"]:
            reasons.append(f"{name}: held by the guard ({guard['count']} changes, limit "
                           f"{guard['limit']}); {guard['confirm']}")
    return reasons


class Liveness:
    """Keeps one ping outstanding per live actor and probes the receiver; :meth:`alive`
    says whether the watchdog may be pinged. :meth:`probe` never blocks (call it from the
    main loop every period)."""

    def __init__(self, daemon: Any, *, actor_hang: float = ACTOR_HANG,
                 receiver_hang: float = RECEIVER_HANG):
        self.daemon = daemon
        self.actor_hang = actor_hang
        self.receiver_hang = receiver_hang
        self._pings: dict[str, tuple[Any, pykka.Future, float]] = {}
        self._receiver_ok = time.monotonic()
        self._probing: threading.Thread | None = None
        self._said: str | None = None

    def probe(self) -> None:
        now = time.monotonic()
        # every actor: a connection with two lanes has two (:mod:`syncd.connectors.lanes`)
        actors = {f"{s.kind}:{n}" + ("" if lane == "bulk" else f" ({lane} lane)"): (s, ref)
                  for group in (self.daemon.connections, self.daemon.coordinators)
                  for n, s in group.items() for lane, ref in s.lane_refs().items()}
        for key in list(self._pings):
            ref, future, _ = self._pings[key]
            sup, now_ref = actors.get(key, (None, None))
            if sup is None or now_ref is not ref or not sup.alive():
                del self._pings[key]  # gone or restarted: supervision's business
            elif _done(future):
                del self._pings[key]
        for key, (sup, ref) in actors.items():
            if key not in self._pings and sup.alive():
                try:
                    self._pings[key] = (ref, ref.proxy().ping(), now)
                except pykka.ActorDeadError:
                    pass
        if self._probing is None or not self._probing.is_alive():
            self._probing = threading.Thread(target=self._probe_receiver, daemon=True,
                                             name="liveness")
            self._probing.start()

    def _probe_receiver(self) -> None:
        server = self.daemon.receiver
        if server is None:
            return
        try:
            with requests.Session() as session:
                session.trust_env = False
                answer = session.get(server.url + "/healthz", timeout=5)
            if answer.status_code in (200, 503):  # 503: draining, still answering
                self._receiver_ok = time.monotonic()
        except requests.RequestException:
            pass

    def problems(self) -> list[str]:
        now = time.monotonic()
        out = [f"{key} has not answered for {now - sent:.0f} s"
               for key, (_, future, sent) in self._pings.items()
               if now - sent > self.actor_hang and not _done(future)]
        if self.daemon.receiver is not None and now - self._receiver_ok > self.receiver_hang:
            out.append(f"the receiver has not answered /healthz for "
                       f"{now - self._receiver_ok:.0f} s")
        return out

    def alive(self) -> bool:
        problems = self.problems()
        said = "; ".join(problems) or None
        if said and said != self._said:
            log.error("watchdog.withheld", problems=problems)
        self._said = said
        return not problems


def _done(future: pykka.Future) -> bool:
    try:
        future.get(timeout=0)
        return True
    except pykka.Timeout:
        return False
    except Exception:
        return True  # it answered, with an error


class OpsApp:
    """``/metrics``, ``/healthz`` and ``/readyz``; no token (see the module docstring)."""

    PATHS = frozenset({"/metrics", "/healthz", "/readyz"})

    def __init__(self, daemon: Any):
        self.daemon = daemon
        self.collector = scrape.DaemonCollector(daemon, lambda: not readiness(daemon))

    def __call__(self, environ: dict, start_response):
        request = Request(environ, max_body=0)
        if request.method not in ("GET", "HEAD"):
            return respond(start_response, 405, {"error": "GET only"}, {"Allow": "GET"})
        if request.path == "/metrics":
            return respond(start_response, 200, scrape.exposition(self.collector),
                           content_type=scrape.CONTENT_TYPE)
        if request.path == "/healthz":
            return respond(start_response, 200, {"status": "ok"})
        if request.path == "/readyz":
            reasons = readiness(self.daemon)
            if reasons:
                return respond(start_response, 503, {"status": "not ready", "reasons": reasons})
            return respond(start_response, 200, {"status": "ready"})
        return respond(start_response, 404, {"error": "not found"})
