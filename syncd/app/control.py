"""What the admin endpoint (and so the CLI) can ask of the daemon: an object the
:class:`syncd.app.daemon.Daemon` holds (``daemon.control``), implementing
:class:`syncd.app.admin.AdminControl`."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from syncd.app import glance
from syncd.app.health import readiness
from syncd.connectors.lanes import REALTIME
from syncd.engine import dryrun
from syncd.engine.coordinator import Progress
from syncd.engine.explain import story as explain_story
from syncd.engine.guard import guard_status
from syncd.engine.responses import responses_status
from syncd.engine.writeback import write_back_events
from syncd.exceptions import NeedsConfirmation
from syncd.web.tasks import task_events

if TYPE_CHECKING:
    from syncd.app.daemon import Daemon

ASK_TIMEOUT = 30.0


class Control:
    """Reads the daemon's state (config, store, supervised actors, progress); starts and
    cancels runs; replays dead letters. The daemon holds one as ``daemon.control``."""

    def __init__(self, daemon: Daemon):
        self.daemon = daemon

    def _integration(self, name: str) -> None:
        """Raise KeyError unless ``name`` is an integration of the current config."""
        if name not in self.daemon.current_config().integrations:
            raise KeyError(f"no integration named {name!r}")

    def status(self) -> dict[str, Any]:
        cfg, store = self.daemon.running()
        integrations = {}
        counts = store.inbox_counts()
        oldest, not_ready = store.oldest_unapplied(), readiness(self.daemon)
        jobs = self.daemon.scheduler.jobs() if self.daemon.scheduler else []
        for name, integration in cfg.integrations.items():
            sup = self.daemon.coordinators.get(name)
            progress = self.daemon.progress.get(name, Progress())
            latest = store.runs(name, limit=1)
            integrations[name] = {
                "source": integration.source,
                "destination": integration.destination,
                "enabled": integration.enabled,
                "state": progress.state if sup and sup.alive() else
                ("disabled" if not integration.enabled else "restarting"),
                "run_id": progress.run_id,
                "total": progress.total,
                "processed": progress.processed,
                "counts": dict(progress.counts),
                "inbox": counts.get(name, {}),
                "events_applied": progress.events_applied,
                "dead_letters": counts.get(name, {}).get("dead", 0),
                "needs_full_sync": name in self.daemon.needs_full_sync,
                "last_error": progress.last_error,
                "paused": progress.paused,
                "last_run": latest[0] if latest else None,
                "restarts": sup.restarts if sup else 0,
                "last_failure": sup.last_failure if sup else None,
                "guard": guard_status(store, integration),
                "preflight": self.daemon.preflights.status(name),
                "responses": responses_status(store, integration, jobs),
                **glance.integration(self.daemon, name, oldest, not_ready, jobs),
            }
        connections = {}
        for name, conn in cfg.connections.items():
            sup = self.daemon.connections.get(name)
            connections[name] = {
                "kind": conn.kind,
                "state": "running" if sup and sup.alive() else "restarting",
                "restarts": sup.restarts if sup else 0,
                "last_failure": sup.last_failure if sup else None,
                **glance.connection(self.daemon, name),
            }
            if sup:  # each lane's call in flight and queue, read without asking it
                connections[name]["lanes"] = sup.lanes_view()
            if sup and sup.alive():
                try:  # the real-time lane when it has one: the bulk lane may be in an import
                    connections[name]["stats"] = self.daemon.supervisor.connection(
                        name, REALTIME).stats().get(timeout=2)
                except Exception:
                    pass
        return {
            "pid": os.getpid(),
            "uptime": time.time() - self.daemon.started_at,
            "config": self.daemon.config_path,
            "receiver": self.daemon.receiver.url if self.daemon.receiver else None,
            "reload_errors": self.daemon.reload_errors,
            "webhooks": self.daemon.receiver_app.stats() if self.daemon.receiver_app else {},
            "connections": connections,
            "integrations": integrations,
            "links": self._links().status() if self._links() is not None else {},
            "jobs": jobs,
            "ready": not not_ready,
            "not_ready": not_ready,
            "last_reload": self.daemon.last_reload,
        }

    def _links(self):
        actors = self.daemon.actors
        return actors.links if actors is not None else None

    def _link(self, name: str) -> bool:
        """True when ``name`` is a link a connector runs (``CONNECTION:KEY``), not an
        integration."""
        links = self._links()
        return (name not in self.daemon.current_config().integrations and links is not None
                and name in links)

    def start_sync(self, integration: str, confirm: bool = False, dry_run: bool = False,
                   plan: int | None = None) -> dict[str, Any]:
        if self._link(integration) and not dry_run and plan is None:
            result = self._links().release(integration, "confirm" if confirm else "start")
            return {"run_id": None, "integration": integration, **result}
        self._integration(integration)
        self.daemon.preflights.gate(integration)  # raises PreflightFailed naming the keys
        if dry_run or plan is not None:  # dryrun.py
            return dryrun_start(self.daemon, integration, dry_run, plan)
        try:
            run_id = self.daemon.supervisor.coordinator(integration).start_full_sync(
                confirm=confirm).get(timeout=ASK_TIMEOUT)
        except NeedsConfirmation:
            raise
        self.daemon.needs_full_sync.pop(integration, None)
        return {"run_id": run_id, "integration": integration}

    def confirm(self, integration: str) -> dict[str, Any]:
        """A person confirms what the stop-and-confirm guard holds (``syncd confirm``)."""
        if self._link(integration):
            return self._links().release(integration, "confirm")
        self._integration(integration)
        return self.daemon.supervisor.coordinator(integration).confirm().get(
            timeout=ASK_TIMEOUT)

    def cancel_sync(self, integration: str) -> dict[str, Any]:
        self.daemon.supervisor.coordinator(integration)  # raises: unknown or dead integration
        run_id = self.daemon.progress[integration].request_cancel()
        if run_id is None:
            raise ValueError(f"no full sync of {integration} is running")
        return {"run_id": run_id, "cancelling": True}

    def runs(self, integration: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        if integration and not self._link(integration):
            self._integration(integration)
        return self.daemon.running()[1].runs(integration, limit)

    def run(self, run_id: int) -> dict[str, Any] | None:
        store = self.daemon.running()[1]
        run = store.run(run_id)
        if run is not None:
            run["errors"] = store.run_errors(run_id)
            if run["kind"] == "dry_run":
                run["plan"] = dryrun.plan(store, run_id)
            run["counts"] = store.run_counts(run_id)  # per event type (responses)
        return run

    def events(self, failed: bool = True, integration: str | None = None) -> list[dict[str, Any]]:
        """The dead letters (``failed``), or every event not applied yet: pending ones, those
        waiting to be tried again, the dead letters, and the opt-outs not yet written back
        to the source."""
        if integration:
            self._integration(integration)
        store = self.daemon.running()[1]
        items = store.dead_letters(integration) if failed else store.unapplied(integration)
        return [{"id": i.id, "integration": i.integration, "connection": i.connection,
                 "record_id": i.event.record_id, "kind": i.event.kind, "status": i.status,
                 "received_at": i.received_at, "attempts": i.attempts,
                 "error": i.last_error} for i in items] + \
            task_events(store, integration, failed) + \
            ([] if failed else write_back_events(store, integration))  # writeback.py

    def retry_events(self, ids: list[int] | None = None,
                     integration: str | None = None) -> dict[str, Any]:
        count = self.daemon.running()[1].retry_dead(ids, integration)
        self.daemon.supervisor.notify([integration] if integration
                                      else list(self.daemon.coordinators))
        return {"requeued": count}

    def explain(self, integration: str, record: str) -> dict[str, Any]:
        """One record's story (``syncd explain``, :mod:`syncd.engine.explain`): of an
        integration, or of a link a connector runs (``CONNECTION:KEY``)."""
        if not self._link(integration):
            self._integration(integration)
        return explain_story(self.daemon.running()[1], integration, record)

    def run_responses(self, integration: str) -> dict[str, Any]:
        """Start a response-data run now (``syncd responses run``); it shows in ``runs``."""
        self._integration(integration)
        run_id = self.daemon.supervisor.coordinator(integration).start_responses().get(
            timeout=ASK_TIMEOUT)
        return {"integration": integration, "run_id": run_id}

    def reload(self) -> dict[str, Any]:
        """Read the config again (``syncd reload``; :class:`syncd.app.reload.Reloader`)."""
        return self.daemon.reload()

    def import_overview(self, integration: str, overview: str) -> dict[str, Any]:
        """Import an overview now (``syncd overview import``); the run shows in ``runs``."""
        config = self.daemon.current_config().integrations.get(integration)
        if config is None:
            raise KeyError(f"no integration named {integration!r}")
        found = next((o for o in config.overviews if o.name == overview), None)
        if found is None:
            names = ", ".join(o.name for o in config.overviews) or "none configured"
            raise KeyError(f"{integration} has no overview {overview!r} (overviews: {names})")
        self.daemon.supervisor.coordinator(integration).run_job.defer(
            "overview", {"overview": found.name, "tag": found.tag})
        return {"integration": integration, "overview": found.name, "started": True}


def dryrun_start(daemon: Daemon, integration: str, dry_run: bool, plan: int | None
                 ) -> dict[str, Any]:
    """``--dry-run``: a plan, nothing written; ``--plan RUN``: that plan applied."""
    if dry_run and plan is not None:
        raise ValueError("give --dry-run or --plan RUN, not both")
    if plan is None:  # a dry run
        daemon.supervisor.coordinator(integration)  # a known, running integration
        return {"run_id": dryrun.start(daemon, integration), "integration": integration,
                "dry_run": True}
    store = daemon.running()[1]
    planned = store.run(plan)
    if planned is None or planned["kind"] != "dry_run" or planned["integration"] != integration:
        raise KeyError(f"run #{plan} is not a dry run of {integration}")
    if planned["status"] != "completed":
        raise ValueError(f"dry run #{plan} is {planned['status']}: only a completed plan "
                         "can be applied")
    if daemon.progress.get(integration) and daemon.progress[integration].state == "full_sync":
        raise ValueError(f"a full sync of {integration} is running; apply the plan after it")
    coordinator = daemon.supervisor.coordinator(integration)
    run_id = store.start_run(integration, "plan", resumed_from=plan)
    coordinator.apply_plan.defer(plan, run_id)
    return {"run_id": run_id, "integration": integration, "plan": plan}
