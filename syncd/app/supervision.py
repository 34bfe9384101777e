"""Supervision: the object (``daemon.supervisor``) that keeps the daemon's actors alive.

Each connection and coordinator actor is a :class:`Supervised`. One that dies is restarted by
the main loop (:meth:`Supervisor.supervise`) after a back-off that doubles up to
``[daemon] restart_backoff_max``; its failures and restarts show in ``syncd status``. An
actor whose first start fails may be handed to the same loop (``supervise=True``, as a
reload's rollback does) instead of raising.

A connection whose connector has two lanes (:mod:`syncd.connectors.lanes`) is one
:class:`Supervised` with two actors, the bulk lane (``ref``) and the real-time lane
(``realtime``): it is alive only while both are, and a death of either restarts both (the
survivor is told to stop; a new connector instance serves the new pair).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pykka
import structlog

from syncd.connectors.connection import ConnectionProxy, typed_proxy
from syncd.connectors.lanes import BULK, REALTIME, Lane, LaneState
from syncd.engine.progress import Progress
from syncd.exceptions import SyncdError

log = structlog.get_logger("syncd.app.daemon")


@dataclass
class Supervised:
    """One actor the daemon keeps alive."""

    name: str
    kind: str  # "connection" | "coordinator"
    start: Callable[[], pykka.ActorRef[Any]]
    ref: pykka.ActorRef[Any] | None = None
    restarts: int = 0
    last_failure: str | None = None
    next_restart: float = 0.0
    started_at: float = field(default_factory=time.time)
    #: The section it runs with (a ConnectionConfig or IntegrationConfig), for rollbacks.
    config: Any = None
    #: A connection's real-time lane, a second actor on the same connector (None: the
    #: connection has one lane, ``ref``; so has every coordinator).
    realtime: pykka.ActorRef[Any] | None = None
    #: A connection's lanes' states by lane (``syncd status``), set by its start.
    lanes: dict[Lane, LaneState] = field(default_factory=dict)
    _proxy: tuple[Any, Any] = (None, None)

    def refs(self) -> list[pykka.ActorRef[Any]]:
        """Its actors, in the order they stop: a real-time lane before the bulk lane that
        owns the connector."""
        return [r for r in (self.realtime, self.ref) if r is not None]

    def lane_refs(self) -> dict[Lane, pykka.ActorRef[Any]]:
        """Its actors by lane (a coordinator's is its "bulk")."""
        out: dict[Lane, pykka.ActorRef[Any]] = {}
        if self.ref is not None:
            out[BULK] = self.ref
        if self.realtime is not None:
            out[REALTIME] = self.realtime
        return out

    def alive(self) -> bool:
        return self.ref is not None and all(r.is_alive() for r in self.refs())

    def lanes_view(self) -> dict[str, dict[str, Any]]:
        """Per lane: the call it runs and for how long, the messages queued for it, the
        calls it ran, whether its actor lives (read without asking the actors)."""
        out: dict[str, dict[str, Any]] = {}
        for lane, ref in self.lane_refs().items():
            state = self.lanes.get(lane)
            if state is not None:
                inbox = ref.actor_inbox  # a ThreadingActor's is a queue.Queue
                queued = inbox.qsize() if isinstance(inbox, queue.Queue) else 0
                out[lane] = {**state.view(queued), "alive": ref.is_alive()}
        return out

    def proxy(self) -> pykka.ActorProxy[Any]:
        """The actor's proxy, made once per actor (making one costs about 0.1 ms, too much
        for every webhook)."""
        ref, cached = self._proxy
        if ref is not self.ref or cached is None:
            if self.ref is None:
                raise pykka.ActorDeadError(f"{self.kind} {self.name} has not started")
            cached = self.ref.proxy()
            self._proxy = (self.ref, cached)
        return cached


class Supervisor:
    """Starts, restarts and stops the supervised actors; holds them by name
    (``connections``, ``coordinators``: the daemon reads the same dicts).

    ``progress`` is the coordinators' progress by integration (a stopped coordinator's full
    sync is cancelled first); ``wake`` is set when an actor fails, so the main loop
    supervises at once."""

    def __init__(self, progress: dict[str, Progress], wake: threading.Event):
        self.connections: dict[str, Supervised] = {}
        self.coordinators: dict[str, Supervised] = {}
        self._progress = progress
        self._wake = wake

    def all(self) -> Iterator[Supervised]:
        yield from (*self.connections.values(), *self.coordinators.values())

    def first_start(self, sup: Supervised, supervise: bool) -> None:
        """Start ``sup`` and hold it. A failed start raises, unless ``supervise``: then it
        is recorded and :meth:`supervise` retries it, as for a crashed actor."""
        into = self.connections if sup.kind == "connection" else self.coordinators
        try:
            sup.ref = sup.start()
        except Exception as exc:
            if not supervise:
                raise
            sup.last_failure = f"{type(exc).__name__}: {exc}"
            log.error("actor.start_failed", actor=sup.name, kind=sup.kind,
                      reason=sup.last_failure)  # supervise() starts it again
        into[sup.name] = sup

    def actor_failed(self, name: str, exc: BaseException) -> None:
        """An actor's ``on_failure``: record why, and wake the main loop."""
        for sup in self.all():
            if sup.name == name:
                sup.last_failure = f"{type(exc).__name__}: {exc}"
        self._wake.set()

    def supervise(self, backoff_max: float) -> None:
        """Restart the actors that died, each after its back-off (the main loop's turn)."""
        now = time.time()
        for sup in list(self.all()):
            if sup.alive() or now < sup.next_restart:
                continue
            if sup.ref is not None and sup.next_restart == 0.0:
                # first notice of the death: wait before restarting, doubling each time
                delay = min(backoff_max, 2.0 ** sup.restarts)
                sup.next_restart = now + delay
                log.error("actor.died", actor=sup.name, kind=sup.kind, restart_in=delay,
                          reason=sup.last_failure)
                continue
            for ref in sup.refs():  # a lane that survived its pair: it stops when free
                if ref.is_alive():
                    ref.stop(block=False)
            try:
                sup.ref = sup.start()
                sup.restarts += 1
                sup.next_restart = 0.0
                sup.started_at = time.time()
                log.warning("actor.restarted", actor=sup.name, kind=sup.kind,
                            restarts=sup.restarts)
                if sup.kind == "coordinator":
                    self.notify([sup.name])
            except Exception as exc:
                sup.last_failure = f"{type(exc).__name__}: {exc}"
                sup.next_restart = now + min(backoff_max, 2.0 ** (sup.restarts + 1))
                sup.restarts += 1
                log.error("actor.restart_failed", actor=sup.name, reason=sup.last_failure)

    def stop(self, sup: Supervised | None, timeout: float = 30.0) -> None:
        """Stop one actor (a coordinator's running full sync is cancelled first)."""
        if sup is None or sup.ref is None:
            return
        if sup.kind == "coordinator" and sup.name in self._progress:
            self._progress[sup.name].request_cancel()
        for ref in sup.refs():  # the real-time lane first: the bulk lane owns the connector
            try:
                ref.stop(block=True, timeout=timeout)
            except (pykka.ActorDeadError, pykka.Timeout):
                pass

    # -- asking them -------------------------------------------------------------------------

    def connection(self, name: str, lane: Lane = BULK) -> ConnectionProxy:
        """The typed proxy of connection ``name``'s ``lane`` (the bulk lane when it has one
        lane); raises while it restarts."""
        sup = self.connections[name]
        ref = sup.realtime if lane == REALTIME and sup.realtime is not None else sup.ref
        if ref is None or not sup.alive():
            raise pykka.ActorDeadError(f"connection {name} is restarting")
        return typed_proxy(ref)

    def realtime(self, name: str) -> ConnectionProxy:
        """The typed proxy of connection ``name``'s real-time lane (:meth:`connection`)."""
        return self.connection(name, REALTIME)

    def coordinator(self, name: str) -> pykka.ActorProxy[Any]:
        """The proxy of integration ``name``'s coordinator; raises KeyError for an unknown
        integration and :class:`SyncdError` while it restarts."""
        sup = self.coordinators.get(name)
        if sup is None:
            raise KeyError(f"no integration named {name!r}")
        if not sup.alive():
            raise SyncdError(f"integration {name} is restarting after a failure")
        return sup.proxy()

    def notify(self, names: Sequence[str]) -> None:
        """Tell these integrations' coordinators that their inbox has events."""
        for name in names:
            sup = self.coordinators.get(name)
            if sup is not None and sup.alive():
                try:
                    sup.proxy().notify.defer()
                except pykka.ActorDeadError:
                    pass


def pinged(ref: pykka.ActorRef[Any], timeout: float,
           failures: Sequence[BaseException] = ()) -> None:
    """Wait for a new actor to answer. One that does not in time is told to stop once it
    gets free (nobody else holds its ref) and the timeout is raised; one that died starting
    raises what killed it (``failures``, filled by its on_failure)."""
    try:
        ref.proxy().ping().get(timeout=timeout)
    except pykka.Timeout:
        ref.stop(block=False)
        raise
    except pykka.ActorDeadError:
        if failures:
            raise failures[0] from None
        raise
