"""Reloading the config: a mixin of :class:`syncd.app.daemon.Daemon`.

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
- ``syncd reload`` (the admin endpoint) runs the same :meth:`Reloading.reload`; the daemon's
  lock makes reloads one at a time.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import structlog

from syncd import config as config_mod
from syncd.app import systemd
from syncd.config.model import Config
from syncd.connectors.connection import typed_proxy
from syncd.engine import preflight
from syncd.engine.records import SchemaNeeds
from syncd.exceptions import ConfigErrors

if TYPE_CHECKING:
    from syncd.app.supervision import Supervised

log = structlog.get_logger("syncd.app.daemon")


class Reloading:
    """``reload`` with rollback, and the worker thread SIGHUP reloads run in."""

    # -- the worker ------------------------------------------------------------------------

    def _start_reload_worker(self) -> None:
        """Called by the main loop while the reload flag is set: start the worker unless
        one runs (it clears the flag before each reload, so none is lost)."""
        if self._reload_thread is not None and self._reload_thread.is_alive():
            return
        self._reload_thread = threading.Thread(target=self._reload_worker, name="reload",
                                               daemon=True)
        self._reload_thread.start()

    def _reload_worker(self) -> None:
        while self._reload_flag.is_set() and not self._stop_flag.is_set():
            self._reload_flag.clear()
            try:
                self.reload()
            except Exception:  # reload() handles its errors; this is the last guard
                log.exception("reload.failed")
        self._wake.set()

    def _wait_for_reload(self) -> None:
        """On stop: let a running reload end (it rolls back if it fails)."""
        thread = self._reload_thread
        if thread is not None and thread.is_alive():
            timeout = self.config.daemon.stop_timeout if self.config else 30.0
            thread.join(timeout)
            if thread.is_alive():
                log.warning("reload.still_running_at_stop")

    # -- reload ------------------------------------------------------------------------------

    def reload(self) -> dict[str, Any]:
        """Validate the config file again; apply it if valid, keep the old one if not or if
        applying it fails."""
        with self._lock:
            systemd.reloading()
            try:
                return self._reload()
            finally:
                systemd.ready()

    def _reload(self) -> dict[str, Any]:
        try:
            new = config_mod.load(self.config_path, self.registry)
        except ConfigErrors as exc:
            for error in exc.errors:
                log.error("reload.rejected", error=str(error))
            log.error("reload.kept_old_config", problems=len(exc.errors))
            return self._reload_failed([str(e) for e in exc.errors])
        except Exception as exc:  # unreadable file and the like
            error = f"{self.config_path}: {exc}"
            log.error("reload.rejected", error=error)
            return self._reload_failed([error])
        old, flags = self.config, dict(self.needs_full_sync)
        # Webhooks go on being accepted and stored; the real-time paths wait until the new
        # config is in place, so what arrives meanwhile is applied under it.
        held = [p for p in self.progress.values() if not p.reloading.is_set()]
        for progress in held:
            progress.reloading.set()
        try:
            changes = self._apply_config(new)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            log.error("reload.apply_failed", error=reason)
            self._roll_back(old, flags)
            log.error("reload.rolled_back", config=self.config_path)
            return self._reload_failed([f"applying the new config failed ({reason}); it was "
                                        "rolled back and syncd runs on the previous config"])
        finally:
            for progress in held:
                progress.reloading.clear()
            self._notify_coordinators(list(self.coordinators))
        self.reload_errors = []
        self.last_reload = {"ok": True, "changes": changes, "at": time.time()}
        for sup in list(self.coordinators.values()):  # a paused real-time path resumes
            if sup.alive() and self.progress.get(sup.name, None) is not None \
                    and self.progress[sup.name].paused:
                sup.ref.proxy().resume.defer("reload")
        log.info("reload.applied", **changes)
        self.start_preflight("reload")  # the new config against the accounts, in the background
        return self.last_reload

    def _reload_failed(self, errors: list[str]) -> dict[str, Any]:
        self.reload_errors = errors
        self.last_reload = {"ok": False, "errors": errors, "at": time.time()}
        return self.last_reload

    def _apply_config(self, new: Config) -> dict[str, Any]:
        old = self.config
        d = config_mod.diff(old, new, self.registry)
        if d.restart_listeners:
            log.warning("reload.restart_needed", reason="the [receiver] or [admin] section "
                        "changed; restart syncd to apply it")
        if old.daemon.durability != new.daemon.durability:
            log.warning("reload.restart_needed", reason="[daemon] durability changed; "
                        "restart syncd to apply it")
        restarted_connections = sorted(set(d.connections_changed) | set(d.connections_removed))
        for name in restarted_connections:
            self._stop_actor(self.connections.pop(name, None))
        # Sources read what the old and the new rules need until every coordinator has the
        # new rules (a read without labels decided by rules with consents would opt out);
        # then only what the new rules need.
        self.wide_needs = _union(preflight.needs(old, self.registry),
                                 preflight.needs(new, self.registry))
        self.config = new
        for name in sorted(set(d.connections_changed) | set(d.connections_added)):
            self._start_connection(name)
        self._tell_needs()
        for name in d.integrations_removed:
            self._stop_actor(self.coordinators.pop(name, None))
        for name in d.integrations_added:
            if new.integrations[name].enabled:
                self._start_coordinator(new.integrations[name])
        for name in d.integrations_changed:
            integration = new.integrations[name]
            sup = self.coordinators.get(name)
            if not integration.enabled:
                self._stop_actor(self.coordinators.pop(name, None))
            elif sup is None:
                self._start_coordinator(integration)
            else:
                self._set_rules(sup, integration)
        self.wide_needs = None
        self._tell_needs()
        for name in d.needs_full_sync:
            reason = "field or consent mappings changed"
            self.needs_full_sync[name] = reason
            if name in self.progress:
                self.progress[name].needs_full_sync = True
            log.warning("full_sync.needed", integration=name, reason=reason)
            if new.integrations[name].full_sync_on_mapping_change:
                try:
                    self.store.forget_digests(name)
                    self.control.start_sync(name)  # unconfirmed: the guard holds what it must
                except Exception as exc:
                    log.error("full_sync.start_failed", integration=name, error=str(exc))
        if self.receiver_app is not None:
            self.receiver_app.set_routes(self._routes(new))
        jobs = self.scheduler.reconcile(new) if self.scheduler is not None else {}
        return {
            "jobs": jobs,
            "connections_restarted": restarted_connections,
            "integrations_added": sorted(d.integrations_added),
            "integrations_removed": sorted(d.integrations_removed),
            "integrations_changed": sorted(d.integrations_changed),
            "needs_full_sync": sorted(d.needs_full_sync),
        }

    def _tell_needs(self) -> None:
        """Tell every running connection what the integrations use of it now."""
        for name, sup in list(self.connections.items()):
            if sup.ref is not None and sup.ref.is_alive():
                typed_proxy(sup.ref).set_needs(self.needs_of(name)).get(
                    timeout=self.ask_timeout)

    def _set_rules(self, sup: Supervised, integration) -> None:
        sup.ref.proxy().set_rules(self._rules(integration), integration).get(
            timeout=self.ask_timeout)
        sup.config = integration

    # -- rollback ----------------------------------------------------------------------------

    def _roll_back(self, old: Config, flags: dict[str, str]) -> None:
        """Bring actors, routes and jobs back to ``old`` after a reload failed part-way.
        Each step is guarded: whatever fails is logged, and an actor that does not start is
        left to the supervisor, which restarts it with back-off."""
        self.wide_needs = _union(preflight.needs(old, self.registry),
                                 self.wide_needs or {})
        self.config = old
        self.needs_full_sync.clear()
        self.needs_full_sync.update(flags)
        for name, progress in self.progress.items():
            progress.needs_full_sync = name in flags
        for name in [n for n in self.coordinators if n not in old.integrations
                     or not old.integrations[n].enabled]:
            self._guarded("stop", name, self._stop_actor, self.coordinators.pop(name))
        for name in [n for n in self.connections if n not in old.connections]:
            self._guarded("stop", name, self._stop_actor, self.connections.pop(name))
        for name, conn in old.connections.items():
            sup = self.connections.get(name)
            if sup is None or sup.config != conn:
                self._guarded("stop", name, self._stop_actor, self.connections.pop(name, None))
                self._guarded("start", name, self._start_connection, name, True)
        for name, integration in old.integrations.items():
            if not integration.enabled:
                continue
            sup = self.coordinators.get(name)
            if sup is None:
                self._guarded("start", name, self._start_coordinator, integration, True)
            elif sup.config != integration and not self._guarded(
                    "set_rules", name, self._set_rules, sup, integration):
                self._guarded("stop", name, self._stop_actor, self.coordinators.pop(name))
                self._guarded("start", name, self._start_coordinator, integration, True)
        if self.receiver_app is not None:
            self._guarded("routes", "receiver", lambda: self.receiver_app.set_routes(
                self._routes(old)))
        if self.scheduler is not None:
            self._guarded("jobs", "scheduler", self.scheduler.reconcile, old)
        self.wide_needs = None
        self._guarded("needs", "connections", self._tell_needs)

    def _guarded(self, step: str, name: str, func, *args) -> bool:
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
