"""Reloading the config: an object the daemon holds as ``daemon.reloader``.

A reload never stops the daemon and never blocks its main loop:

- SIGHUP only sets a flag; the main loop hands the reload to one worker thread and keeps
  supervising and pinging the systemd watchdog while it runs. SIGHUPs that arrive during a
  reload are coalesced into one more reload after it.
- The new config is validated whole first; an invalid one is rejected and the old one kept.
- Webhooks are accepted and stored throughout; the real-time paths wait while the new config
  is applied (``Progress.reloading``), so what arrives meanwhile is applied under it. What
  changed is logged (``reload.applied``) and shown by ``syncd status``.
- Applying a valid one (restarting changed connections, new rules, routes, jobs) may fail
  part-way: an actor that does not start, a call that times out. Then everything is rolled
  back to the old config (actors that no longer match it are restarted with it; one that
  will not start is left to the supervisor's back-off) and the daemon runs on with it.
- ``syncd reload`` (the admin endpoint) runs the same :meth:`Reloader.reload`; the daemon's
  lock makes reloads one at a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

from syncd import config as config_mod
from syncd.app import systemd
from syncd.app.actors import Actors
from syncd.app.daemon_preflight import Preflights
from syncd.app.scheduler import Scheduler
from syncd.config.model import Config
from syncd.config.needs import needs
from syncd.exceptions import ConfigErrors
from syncd.records import SchemaNeeds
from syncd.web.receiver import WebhookApp

log = structlog.get_logger("syncd.app.daemon")


class Reloader:
    """``reload`` with rollback, and the worker thread SIGHUP reloads run in.

    It switches ``actors.config`` and restarts what changed through ``actors``; it also
    re-routes the receiver (``receiver``), reconciles the ``scheduler``'s jobs, flags the
    integrations whose mappings changed (``needs_full_sync``, shared with the daemon's
    status), starts their full sync when so configured (``start_sync``) and runs the
    preflight again (``preflights``). ``lock`` is held while it changes the actors (the
    main loop does not supervise meanwhile). The worker reloads while ``requested`` is set,
    not after ``stopping``, and sets ``wake`` when done."""

    def __init__(self, path: str, actors: Actors, *, lock: threading.RLock,
                 needs_full_sync: dict[str, str], receiver: WebhookApp, scheduler: Scheduler,
                 preflights: Preflights, start_sync: Callable[[str], object],
                 requested: threading.Event, stopping: threading.Event,
                 wake: threading.Event):
        self.path = path
        self.actors = actors
        self.supervisor = actors.supervisor
        self.lock = lock
        self.needs_full_sync = needs_full_sync
        self.receiver = receiver
        self.scheduler = scheduler
        self.preflights = preflights
        self.start_sync = start_sync
        self.requested = requested
        self.stopping = stopping
        self.wake = wake
        #: The worker thread of SIGHUP reloads (None before the first).
        self.thread: threading.Thread | None = None
        #: The problems of the last reload that failed (empty once one succeeds).
        self.errors: list[str] = []
        #: What the last reload did (``syncd status``).
        self.last: dict[str, Any] | None = None

    # -- the worker ------------------------------------------------------------------------

    def start_worker(self) -> None:
        """Called by the main loop while a reload is requested: start the worker unless
        one runs (it clears the request before each reload, so none is lost)."""
        if self.thread is not None and self.thread.is_alive():
            return
        self.thread = threading.Thread(target=self._worker, name="reload", daemon=True)
        self.thread.start()

    def _worker(self) -> None:
        while self.requested.is_set() and not self.stopping.is_set():
            self.requested.clear()
            try:
                self.reload()
            except Exception:  # reload() handles its errors; this is the last guard
                log.exception("reload.failed")
        self.wake.set()

    def wait(self) -> None:
        """On stop: let a running reload end (it rolls back if it fails)."""
        thread = self.thread
        if thread is not None and thread.is_alive():
            thread.join(self.actors.config.daemon.stop_timeout)
            if thread.is_alive():
                log.warning("reload.still_running_at_stop")

    # -- reload ------------------------------------------------------------------------------

    def reload(self) -> dict[str, Any]:
        """Validate the config file again; apply it if valid, keep the old one if not or if
        applying it fails."""
        with self.lock:
            systemd.reloading()
            try:
                return self._reload()
            finally:
                systemd.ready()

    def _reload(self) -> dict[str, Any]:
        try:
            new = config_mod.load(self.path, self.actors.registry)
        except ConfigErrors as exc:
            for problem in exc.errors:
                log.error("reload.rejected", error=str(problem))
            log.error("reload.kept_old_config", problems=len(exc.errors))
            return self._reload_failed([str(e) for e in exc.errors])
        except Exception as exc:  # unreadable file and the like
            unreadable = f"{self.path}: {exc}"
            log.error("reload.rejected", error=unreadable)
            return self._reload_failed([unreadable])
        old, flags = self.actors.config, dict(self.needs_full_sync)
        # Webhooks go on being accepted and stored; the real-time paths wait until the new
        # config is in place, so what arrives meanwhile is applied under it.
        held = [p for p in self.actors.progress.values() if not p.reloading.is_set()]
        for progress in held:
            progress.reloading.set()
        try:
            changes = self._apply_config(new)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            log.error("reload.apply_failed", error=reason)
            self._roll_back(old, flags)
            log.error("reload.rolled_back", config=self.path)
            return self._reload_failed([f"applying the new config failed ({reason}); it was "
                                        "rolled back and syncd runs on the previous config"])
        finally:
            for progress in held:
                progress.reloading.clear()
            self.supervisor.notify(list(self.supervisor.coordinators))
        self.errors = []
        self.last = {"ok": True, "changes": changes, "at": time.time()}
        for sup in list(self.supervisor.coordinators.values()):  # a paused path resumes
            paused = self.actors.progress.get(sup.name)
            if sup.alive() and paused is not None and paused.paused:
                sup.proxy().resume.defer("reload")
        log.info("reload.applied", **changes)
        self.preflights.start("reload")  # the new config against the accounts, in the background
        return self.last

    def _reload_failed(self, errors: list[str]) -> dict[str, Any]:
        self.errors = errors
        self.last = {"ok": False, "errors": errors, "at": time.time()}
        return self.last

    def _apply_config(self, new: Config) -> dict[str, Any]:
        actors, sup_ = self.actors, self.supervisor
        old = actors.config
        d = config_mod.diff(old, new, actors.registry)
        if d.restart_listeners:
            log.warning("reload.restart_needed", reason="the [receiver] or [admin] section "
                        "changed; restart syncd to apply it")
        if old.daemon.durability != new.daemon.durability:
            log.warning("reload.restart_needed", reason="[daemon] durability changed; "
                        "restart syncd to apply it")
        restarted_connections = sorted(set(d.connections_changed) | set(d.connections_removed))
        for name in restarted_connections:
            sup_.stop(sup_.connections.pop(name, None))
        # Sources read what the old and the new rules need until every coordinator has the
        # new rules (a read without labels decided by rules with consents would opt out);
        # then only what the new rules need.
        actors.wide_needs = _union(needs(old, actors.registry),
                                   needs(new, actors.registry))
        actors.config = new
        for name in sorted(set(d.connections_changed) | set(d.connections_added)):
            actors.start_connection(name)
        actors.tell_needs()
        for name in d.integrations_removed:
            sup_.stop(sup_.coordinators.pop(name, None))
        for name in d.integrations_added:
            if new.integrations[name].enabled:
                actors.start_coordinator(new.integrations[name])
        for name in d.integrations_changed:
            integration = new.integrations[name]
            sup = sup_.coordinators.get(name)
            if not integration.enabled:
                sup_.stop(sup_.coordinators.pop(name, None))
            elif sup is None:
                actors.start_coordinator(integration)
            else:
                actors.set_rules(sup, integration)
        actors.wide_needs = None
        actors.tell_needs()
        for name in d.needs_full_sync:
            reason = "field or consent mappings changed"
            self.needs_full_sync[name] = reason
            if name in actors.progress:
                actors.progress[name].needs_full_sync = True
            log.warning("full_sync.needed", integration=name, reason=reason)
            if new.integrations[name].full_sync_on_mapping_change:
                try:
                    actors.store.forget_digests(name)
                    self.start_sync(name)  # unconfirmed: the guard holds what it must
                except Exception as exc:
                    log.error("full_sync.start_failed", integration=name, error=str(exc))
        self.receiver.set_routes(actors.routes(new))
        jobs = self.scheduler.reconcile(new)
        return {
            "jobs": jobs,
            "connections_restarted": restarted_connections,
            "integrations_added": sorted(d.integrations_added),
            "integrations_removed": sorted(d.integrations_removed),
            "integrations_changed": sorted(d.integrations_changed),
            "needs_full_sync": sorted(d.needs_full_sync),
        }

    # -- rollback ----------------------------------------------------------------------------

    def _roll_back(self, old: Config, flags: dict[str, str]) -> None:
        """Bring actors, routes and jobs back to ``old`` after a reload failed part-way.
        Each step is guarded: whatever fails is logged, and an actor that does not start is
        left to the supervisor, which restarts it with back-off."""
        actors, sup_ = self.actors, self.supervisor
        actors.wide_needs = _union(needs(old, actors.registry),
                                   actors.wide_needs or {})
        actors.config = old
        self.needs_full_sync.clear()
        self.needs_full_sync.update(flags)
        for name, progress in actors.progress.items():
            progress.needs_full_sync = name in flags
        for name in [n for n in sup_.coordinators if n not in old.integrations
                     or not old.integrations[n].enabled]:
            _guarded("stop", name, sup_.stop, sup_.coordinators.pop(name))
        for name in [n for n in sup_.connections if n not in old.connections]:
            _guarded("stop", name, sup_.stop, sup_.connections.pop(name))
        for name, conn in old.connections.items():
            sup = sup_.connections.get(name)
            if sup is None or sup.config != conn:
                _guarded("stop", name, sup_.stop, sup_.connections.pop(name, None))
                _guarded("start", name, actors.start_connection, name, True)
        for name, integration in old.integrations.items():
            if not integration.enabled:
                continue
            sup = sup_.coordinators.get(name)
            if sup is None:
                _guarded("start", name, actors.start_coordinator, integration, True)
            elif sup.config != integration and not _guarded(
                    "set_rules", name, actors.set_rules, sup, integration):
                _guarded("stop", name, sup_.stop, sup_.coordinators.pop(name))
                _guarded("start", name, actors.start_coordinator, integration, True)
        _guarded("routes", "receiver", lambda: self.receiver.set_routes(actors.routes(old)))
        _guarded("jobs", "scheduler", self.scheduler.reconcile, old)
        actors.wide_needs = None
        _guarded("needs", "connections", actors.tell_needs)


def _guarded(step: str, name: str, func: Callable[..., object], *args: object) -> bool:
    try:
        func(*args)
        return True
    except Exception as exc:  # pykka.Timeout included
        log.error("reload.rollback_step_failed", step=step, name=name,
                  error=f"{type(exc).__name__}: {exc}")
        return False


def _union(a: dict[str, SchemaNeeds], b: dict[str, SchemaNeeds]) -> dict[str, SchemaNeeds]:
    none = SchemaNeeds("none")
    return {name: a.get(name, none).union(b.get(name, none)) for name in {*a, *b}}
