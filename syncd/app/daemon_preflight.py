"""The daemon's preflight (:mod:`syncd.engine.preflight`): a mixin of :class:`syncd.app.daemon.Daemon`.

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
from typing import Any

import structlog

from syncd.config.model import Config
from syncd.engine import preflight
from syncd.engine.records import SchemaNeeds, SchemaProblem
from syncd.exceptions import PreflightFailed

log = structlog.get_logger("syncd.app.daemon")

#: Seconds one connection's schema check may take.
CHECK_TIMEOUT = 120.0


class Preflights:
    """Keeps each integration's latest preflight result."""

    def _init_preflight(self) -> None:
        self._preflight_lock = threading.Lock()
        self._preflight_wanted = 0  # bumped by each request for a run
        self._preflight_thread: threading.Thread | None = None
        #: integration -> its part of the latest report (``Report.for_integration``)
        self._preflight: dict[str, dict[str, Any]] = {}
        #: integration -> the problems that refuse its full sync
        self._preflight_blocking: dict[str, list[SchemaProblem]] = {}
        #: integration -> the config the result is for (its section and its connections')
        self._preflight_basis: dict[str, tuple] = {}

    def preflight_status(self, integration: str) -> dict[str, Any]:
        with self._preflight_lock:
            found = self._preflight.get(integration)
            running = self._preflight_thread is not None and self._preflight_thread.is_alive()
        if found is None:
            return {"state": "running" if running else "pending", "problems": [],
                    "warnings": [], "connection_errors": []}
        return {**found, "running": running}

    def start_preflight(self, reason: str) -> None:
        """Run the preflight of the whole config in the background."""
        with self._preflight_lock:
            self._preflight_wanted += 1
            if self._preflight_thread is not None and self._preflight_thread.is_alive():
                return  # the running one runs again when it ends
            self._preflight_thread = threading.Thread(
                target=self._preflight_worker, args=(reason,), name="preflight", daemon=True)
            self._preflight_thread.start()

    def _preflight_worker(self, reason: str) -> None:
        while True:
            with self._preflight_lock:
                wanted = self._preflight_wanted
            config = self.config
            try:
                report = preflight.run(config, self.registry, self._check_through_actor)
                self._keep(config, report, config.integrations)
                log.info("preflight.finished", reason=reason, ok=report.ok)
            except Exception:  # a bug must not end the thread silently
                log.exception("preflight.failed", reason=reason)
            with self._preflight_lock:
                if wanted == self._preflight_wanted or self._stop_flag.is_set():
                    self._preflight_thread = None
                    return
            reason = "again"

    def _check_through_actor(self, name: str, needs: SchemaNeeds) -> list[SchemaProblem]:
        return self.connection(name).check_schema(needs).get(timeout=CHECK_TIMEOUT)

    @staticmethod
    def _basis(config: Config, integration: str) -> tuple:
        i = config.integrations[integration]
        return (i, config.connections.get(i.source), config.connections.get(i.destination))

    def _keep(self, config: Config, report: preflight.Report, names) -> None:
        with self._preflight_lock:
            for name in names:
                integration = config.integrations[name]
                self._preflight[name] = report.for_integration(integration)
                self._preflight_blocking[name] = report.blocking(integration)
                self._preflight_basis[name] = self._basis(config, name)

    def _preflight_gate(self, name: str) -> None:
        """Raise :class:`PreflightFailed` when the accounts lack a name the config of
        integration ``name`` uses (checked again unless the last result is clean and for the
        current config)."""
        config = self.config
        integration = config.integrations[name]
        with self._preflight_lock:
            found = self._preflight.get(name)
            fresh = self._preflight_basis.get(name) == self._basis(config, name)
        if found is None or not fresh or found["state"] != "ok":
            report = preflight.run(config, self.registry, self._check_through_actor,
                                   connections={integration.source, integration.destination})
            self._keep(config, report, [name])
        with self._preflight_lock:
            blocking = list(self._preflight_blocking.get(name) or ())
        if blocking:
            log.error("full_sync.refused", integration=name, keys=[p.key for p in blocking])
            raise PreflightFailed(name, blocking)
