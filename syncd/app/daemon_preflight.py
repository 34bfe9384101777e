"""The daemon's preflight (:mod:`syncd.engine.preflight`): an object the daemon holds as
``daemon.preflights``, given the current config, the plugins and a schema check through the
connection actors.

- At start and after each applied reload, the preflight runs in a background thread through
  the connection actors (``check_schema``), so a slow or failing account never delays the
  start nor stops the receiver from storing webhooks. Its problems are logged and shown per
  integration in ``syncd status`` (``preflight``); requests for another run while one runs are
  coalesced into one more run after it.
- Before a full sync starts, the integration's last result is consulted: it must be for the
  current config and clean. Otherwise (none yet, the config changed, problems, a connection
  error) its two connections are checked again at once, as the account may have been fixed
  meanwhile. A full sync whose config names something the accounts lack is refused with
  :class:`~syncd.exceptions.PreflightFailed` naming the keys. A connection error does not
  refuse it: the run meets the account itself and says what it finds. A run the daemon
  resumes at start (interrupted before) was checked when it started and is not gated again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

import structlog

from syncd.config.model import Config, ConnectionConfig, IntegrationConfig
from syncd.connectors.connection import ConnectionProxy
from syncd.connectors.plugins import Registry
from syncd.engine import preflight
from syncd.exceptions import PreflightFailed
from syncd.records import SchemaNeeds, SchemaProblem

log = structlog.get_logger("syncd.app.daemon")

#: Seconds one connection's schema check may take.
CHECK_TIMEOUT = 120.0


#: What a result is for: an integration's section and its two connections' sections.
Basis = tuple[IntegrationConfig, ConnectionConfig | None, ConnectionConfig | None]
#: Checks connection ``name`` against what the config needs of it: its problems.
Check = Callable[[str, SchemaNeeds], list[SchemaProblem]]


class Preflights:
    """Keeps each integration's latest preflight result.

    ``config`` returns the daemon's current config, ``check`` asks a connection actor
    (``check_schema``), ``stopping`` ends the background runs."""

    def __init__(self, config: Callable[[], Config], registry: Registry, check: Check,
                 stopping: threading.Event):
        self._config = config
        self._registry = registry
        self._check = check
        self._stopping = stopping
        self._lock = threading.Lock()
        self._wanted = 0  # bumped by each request for a run
        self._thread: threading.Thread | None = None
        #: integration -> its part of the latest report (``Report.for_integration``)
        self._results: dict[str, dict[str, Any]] = {}
        #: integration -> the problems that refuse its full sync
        self._blocking: dict[str, list[SchemaProblem]] = {}
        #: integration -> the config the result is for (its section and its connections')
        self._basis: dict[str, Basis] = {}

    def status(self, integration: str) -> dict[str, Any]:
        with self._lock:
            found = self._results.get(integration)
            running = self._thread is not None and self._thread.is_alive()
        if found is None:
            return {"state": "running" if running else "pending", "problems": [],
                    "warnings": [], "connection_errors": []}
        return {**found, "running": running}

    def start(self, reason: str) -> None:
        """Run the preflight of the whole config in the background."""
        with self._lock:
            self._wanted += 1
            if self._thread is not None and self._thread.is_alive():
                return  # the running one runs again when it ends
            self._thread = threading.Thread(
                target=self._worker, args=(reason,), name="preflight", daemon=True)
            self._thread.start()

    def _worker(self, reason: str) -> None:
        while True:
            with self._lock:
                wanted = self._wanted
            config = self._config()
            try:
                report = preflight.run(config, self._registry, self._check)
                self._keep(config, report, config.integrations)
                log.info("preflight.finished", reason=reason, ok=report.ok)
            except Exception:  # a bug must not end the thread silently
                log.exception("preflight.failed", reason=reason)
            with self._lock:
                if wanted == self._wanted or self._stopping.is_set():
                    self._thread = None
                    return
            reason = "again"

    def _keep(self, config: Config, report: preflight.Report, names: Iterable[str]) -> None:
        with self._lock:
            for name in names:
                integration = config.integrations[name]
                self._results[name] = report.for_integration(integration)
                self._blocking[name] = report.blocking(integration)
                self._basis[name] = basis(config, name)

    def gate(self, name: str) -> None:
        """Raise :class:`PreflightFailed` when the accounts lack a name the config of
        integration ``name`` uses (checked again unless the last result is clean and for the
        current config)."""
        config = self._config()
        integration = config.integrations[name]
        with self._lock:
            found = self._results.get(name)
            fresh = self._basis.get(name) == basis(config, name)
        if found is None or not fresh or found["state"] != "ok":
            report = preflight.run(config, self._registry, self._check,
                                   connections={integration.source, integration.destination})
            self._keep(config, report, [name])
        with self._lock:
            blocking = list(self._blocking.get(name) or ())
        if blocking:
            log.error("full_sync.refused", integration=name, keys=[p.key for p in blocking])
            raise PreflightFailed(name, blocking)


def basis(config: Config, integration: str) -> Basis:
    i = config.integrations[integration]
    return (i, config.connections.get(i.source), config.connections.get(i.destination))


def through_actors(connection: Callable[[str], ConnectionProxy]) -> Check:
    """The check that asks each connection's actor (``check_schema``)."""

    def check(name: str, needs: SchemaNeeds) -> list[SchemaProblem]:
        return connection(name).check_schema(needs).get(timeout=CHECK_TIMEOUT)

    return check
