"""Supervision: a mixin of :class:`syncd.app.daemon.Daemon` that keeps its actors alive.

Each connection and coordinator actor is a :class:`Supervised`. One that dies is restarted by
the main loop (:meth:`Supervising._supervise`) after a back-off that doubles up to
``[daemon] restart_backoff_max``; its failures and restarts show in ``syncd status``. An
actor whose first start fails may be handed to the same loop (``supervise=True``, as a
reload's rollback does) instead of raising.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pykka
import structlog

log = structlog.get_logger("syncd.app.daemon")


@dataclass
class Supervised:
    """One actor the daemon keeps alive."""

    name: str
    kind: str  # "connection" | "coordinator"
    start: Callable[[], pykka.ActorRef]
    ref: pykka.ActorRef | None = None
    restarts: int = 0
    last_failure: str | None = None
    next_restart: float = 0.0
    started_at: float = field(default_factory=time.time)
    #: The section it runs with (a ConnectionConfig or IntegrationConfig), for rollbacks.
    config: Any = None
    _proxy: tuple[Any, Any] = (None, None)

    def alive(self) -> bool:
        return self.ref is not None and self.ref.is_alive()

    def proxy(self) -> pykka.ActorProxy:
        """The actor's proxy, made once per actor (making one costs about 0.1 ms, too much
        for every webhook)."""
        ref, cached = self._proxy
        if ref is not self.ref or cached is None:
            cached = self.ref.proxy()
            self._proxy = (self.ref, cached)
        return cached


class Supervising:
    """Starting, restarting and stopping supervised actors."""

    def _first_start(self, sup: Supervised, into: dict[str, Supervised], supervise: bool
                     ) -> None:
        try:
            sup.ref = sup.start()
        except Exception as exc:
            if not supervise:
                raise
            sup.last_failure = f"{type(exc).__name__}: {exc}"
            log.error("actor.start_failed", actor=sup.name, kind=sup.kind,
                      reason=sup.last_failure)  # _supervise starts it again
        into[sup.name] = sup

    def _actor_failed(self, name: str, exc: BaseException) -> None:
        for sup in [*self.connections.values(), *self.coordinators.values()]:
            if sup.name == name:
                sup.last_failure = f"{type(exc).__name__}: {exc}"
        self._wake.set()

    def _supervise(self) -> None:
        now = time.time()
        for sup in (*self.connections.values(), *self.coordinators.values()):
            if sup.alive() or now < sup.next_restart:
                continue
            if sup.ref is not None and sup.next_restart == 0.0:
                # first notice of the death: wait before restarting, doubling each time
                delay = min(self.config.daemon.restart_backoff_max, 2.0 ** sup.restarts)
                sup.next_restart = now + delay
                log.error("actor.died", actor=sup.name, kind=sup.kind, restart_in=delay,
                          reason=sup.last_failure)
                continue
            try:
                sup.ref = sup.start()
                sup.restarts += 1
                sup.next_restart = 0.0
                sup.started_at = time.time()
                log.warning("actor.restarted", actor=sup.name, kind=sup.kind,
                            restarts=sup.restarts)
                if sup.kind == "coordinator":
                    self._notify_coordinators([sup.name])
            except Exception as exc:
                sup.last_failure = f"{type(exc).__name__}: {exc}"
                sup.next_restart = now + min(self.config.daemon.restart_backoff_max,
                                             2.0 ** (sup.restarts + 1))
                sup.restarts += 1
                log.error("actor.restart_failed", actor=sup.name, reason=sup.last_failure)

    def _stop_actor(self, sup: Supervised | None, timeout: float = 30.0) -> None:
        if sup is None or sup.ref is None:
            return
        try:
            if sup.kind == "coordinator" and sup.name in self.progress:
                self.progress[sup.name].request_cancel()
            sup.ref.stop(block=True, timeout=timeout)
        except (pykka.ActorDeadError, pykka.Timeout):
            pass


def pinged(ref: pykka.ActorRef, timeout: float, failures: list[BaseException] = ()) -> None:
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
