"""The daemon: start order, signals, reload, supervision, stop order, systemd notifications.

Start order: plugins → config → logs → state → connection actors (pinged) → coordinators
(pinged) → receiver → admin endpoint → interrupted runs resumed → READY, with the preflight
(the accounts against the config, :mod:`syncd.app.daemon_preflight`) started in the background
before READY, and again after each applied reload. Stop order is the
reverse, inside one ``finally``: the receiver drains first (new webhooks get 503, so their
senders retry), then coordinators finish their current step, then connections close.

Signal handlers only set flags; the main thread acts on them:

- SIGHUP: reload, in a worker thread while the main loop goes on pinging the watchdog (see
  :mod:`syncd.app.reload`). The new config is validated whole; on any error, also while it is
  applied, the daemon logs each problem and runs on with the old config. Only what changed
  restarts.
- SIGTERM / SIGINT: stop.

A connection or coordinator actor that dies is restarted with back-off by the main loop (see
:mod:`syncd.app.supervision`);
its failures and restarts show in ``syncd status``.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pykka
import structlog

from syncd import config as config_mod
from syncd.app import logs, systemd
from syncd.app.admin import AdminApp, ensure_token
from syncd.app.control import Control
from syncd.app.daemon_preflight import Preflights
from syncd.app.health import Liveness, OpsApp
from syncd.app.reload import Reloading
from syncd.app.scheduler import Scheduler
from syncd.app.supervision import Supervised, Supervising, pinged
from syncd.config.model import Config, IntegrationConfig
from syncd.connectors import plugins
from syncd.connectors.capabilities import Capability
from syncd.connectors.connection import ConnectionActor, ConnectionProxy, typed_proxy
from syncd.connectors.connector import Connector
from syncd.engine import explain, preflight
from syncd.engine.coordinator import Coordinator, Progress
from syncd.engine.records import SchemaNeeds
from syncd.engine.rules import Rules
from syncd.engine.store import Store
from syncd.engine.tasks import TaskEndpoint, resolver
from syncd.exceptions import ConfigErrors, SyncdError
from syncd.web.receiver import Route, WebhookApp, start_receiver
from syncd.web.wsgi import ServerThread

log = structlog.get_logger("syncd.app.daemon")

ASK_TIMEOUT = 30.0


class Daemon(Reloading, Preflights, Supervising):
    #: Seconds to wait for an actor's answer (a start's ping, a reload's set_rules).
    ask_timeout = ASK_TIMEOUT
    #: Set while a reload moves between two configs: per connection, what either uses.
    wide_needs: dict[str, SchemaNeeds] | None = None

    def __init__(self, config_path: str, *, registry: plugins.Registry | None = None,
                 install_signals: bool = True, configure_logging: bool = True):
        self.config_path = config_path
        self.registry = registry
        self.install_signals = install_signals
        self.configure_logging = configure_logging
        self.config: Config | None = None
        self.store: Store | None = None
        self.connections: dict[str, Supervised] = {}
        self.coordinators: dict[str, Supervised] = {}
        self.progress: dict[str, Progress] = {}
        self.needs_full_sync: dict[str, str] = {}
        self.receiver_app: WebhookApp | None = None
        self.receiver: ServerThread | None = None
        self.admin: ServerThread | None = None
        self.metrics_server: ServerThread | None = None
        self.liveness = Liveness(self)
        self.admin_token: str | None = None
        self.scheduler: Scheduler | None = None
        self.started = threading.Event()
        self.stopped = threading.Event()
        self._stop_flag = threading.Event()
        self._reload_flag = threading.Event()
        self._reload_thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._lock = threading.RLock()
        self.started_at = time.time()
        self.reload_errors: list[str] = []
        self.last_reload: dict[str, Any] | None = None
        self._init_preflight()  # daemon_preflight.py
        #: What the admin endpoint (and so the CLI) asks: status, runs, sync start ...
        self.control = Control(self)

    # -- entry point -------------------------------------------------------------------------

    def serve(self) -> int:
        """Run until stopped. Returns the process exit code."""
        if self.registry is None:
            self.registry = plugins.load()
        try:
            self.config = config_mod.load(self.config_path, self.registry)
        except ConfigErrors as exc:
            for error in exc.errors:
                log.error("config.invalid", error=str(error))
            self.stopped.set()
            return 78  # EX_CONFIG
        if self.configure_logging:
            logs.configure(self.config.daemon.log_level, self.config.daemon.log_format)
        if self.install_signals:
            self._install_signals()
        try:
            self._start()
            self.started.set()
            systemd.ready()
            log.info("daemon.ready", receiver=self.receiver.url if self.receiver else None,
                     integrations=sorted(self.coordinators))
            self._main_loop()
        except Exception:
            log.exception("daemon.failed")
            return 1
        finally:
            systemd.stopping()
            self._wait_for_reload()
            self._stop_all()
            self.stopped.set()
        return 0

    def request_stop(self) -> None:
        self._stop_flag.set()
        self._wake.set()

    def request_reload(self) -> None:
        self._reload_flag.set()
        self._wake.set()

    def _install_signals(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.request_stop())
        signal.signal(signal.SIGINT, lambda *_: self.request_stop())
        signal.signal(signal.SIGHUP, lambda *_: self.request_reload())
        try:
            from pykka.debug import log_thread_tracebacks
            signal.signal(signal.SIGUSR1, log_thread_tracebacks)
        except (ImportError, ValueError):
            pass

    # -- starting ----------------------------------------------------------------------------

    def _start(self) -> None:
        cfg = self.config
        os.makedirs(cfg.daemon.state_dir, mode=0o700, exist_ok=True)
        self.store = Store(os.path.join(cfg.daemon.state_dir, "syncd.db"),
                           durability=cfg.daemon.durability)
        # before the coordinators, whose timers are its jobs; started once they all run
        self.scheduler = Scheduler(
            self._send_job, state_file=os.path.join(cfg.daemon.state_dir, "scheduler.json"))
        for name in cfg.connections:
            self._start_connection(name)
        for integration in cfg.integrations.values():
            if integration.enabled:
                self._start_coordinator(integration)
        self._resume_interrupted()  # before any webhook: events wait for the resumed sync
        self.receiver_app = WebhookApp(store=self.store, max_body=cfg.receiver.max_body_bytes,
                                       notify=self._notify_coordinators)
        self.receiver_app.set_routes(self._routes(cfg))
        self.receiver_app.router.add(  # tasks from automation flows: syncd/engine/tasks.py
            "POST", "/tasks/{integration}", TaskEndpoint(self.store, resolver(self)).handle)
        self.receiver = start_receiver(self.receiver_app, cfg.receiver.host, cfg.receiver.port,
                                       cfg.receiver.threads,
                                       connection_limit=cfg.receiver.connection_limit)
        token_file = cfg.admin.token_file or os.path.join(cfg.daemon.state_dir, "admin.token")
        self.admin_token = ensure_token(token_file)
        self.ops = OpsApp(self)  # /metrics, /healthz, /readyz (health.py)
        self.admin = ServerThread(AdminApp(self.control, self.admin_token, self.ops), cfg.admin.host,
                                  cfg.admin.port, threads=4, name="admin").start()
        if cfg.admin.metrics_port:
            self.metrics_server = ServerThread(self.ops, cfg.admin.metrics_host,
                                               cfg.admin.metrics_port, threads=2,
                                               name="metrics").start()
        self._notify_coordinators(list(self.coordinators))  # apply what was left in the inbox
        self.scheduler.reconcile(cfg)
        self.scheduler.start()
        self.start_preflight("start")  # in the background: the accounts against the config
        if cfg.receiver.public_url:
            threading.Thread(target=self._register_webhooks, args=(cfg,), daemon=True,
                             name="webhook-registration").start()

    def _send_job(self, integration: str, job: str, params: dict[str, Any]) -> None:
        """A scheduled job fired (scheduler thread): tell the coordinator; never block."""
        sup = self.coordinators.get(integration)
        if sup is None or not sup.alive():
            raise SyncdError(f"integration {integration} is not running")  # Scheduler logs it
        sup.ref.proxy().run_job.defer(job, params)

    def _start_connection(self, name: str, supervise: bool = False) -> None:
        """Start a connection's actor. It raises when the start fails, unless ``supervise``:
        then the failure is recorded and the main loop retries, as for a crashed actor."""
        conn_cfg = self.config.connections[name]
        cls = self.registry.connector(conn_cfg.kind)

        def start() -> pykka.ActorRef:
            connector = cls(name, conn_cfg.options)
            connector.state_dir = self.config.daemon.state_dir
            connector.peers = {n: (c.kind, c.options) for n, c in
                               self.config.connections.items() if n != name}
            connector.set_needs(self.needs_of(name))  # before its first read
            failures: list[BaseException] = []
            ref = ConnectionActor.start(connector, on_failure=lambda n, e: (
                failures.append(e), self._actor_failed(n, e)))
            pinged(ref, self.ask_timeout, failures)
            return ref

        sup = Supervised(name, "connection", start, config=conn_cfg)
        self._first_start(sup, self.connections, supervise)

    def needs_of(self, name: str) -> SchemaNeeds:
        """What the enabled integrations use of connection ``name``; while a reload moves
        between two configs, what either uses (see :class:`syncd.app.reload.Reloading`)."""
        if self.wide_needs is not None and name in self.wide_needs:
            return self.wide_needs[name]
        return preflight.needs(self.config, self.registry).get(name, SchemaNeeds("none"))

    def connection(self, name: str) -> ConnectionProxy:
        sup = self.connections[name]
        if sup.ref is None or not sup.ref.is_alive():
            raise pykka.ActorDeadError(f"connection {name} is restarting")
        return typed_proxy(sup.ref)

    def _rules(self, integration: IntegrationConfig) -> Rules:
        dest_kind = self.config.connections[integration.destination].kind
        dest_cls = self.registry.connector(dest_kind)
        return Rules.from_integration(integration, dest_cls.canonical_attribute)

    def _start_coordinator(self, integration: IntegrationConfig, supervise: bool = False
                           ) -> None:
        name = integration.name
        progress = self.progress.setdefault(name, Progress())

        def start() -> pykka.ActorRef:
            current = self.config.integrations[name]
            caps = {role: self.registry.connector(
                self.config.connections[getattr(current, role)].kind).capabilities
                for role in ("source", "destination")}
            timers = self.scheduler.timers(name) if self.scheduler is not None else None
            ref = Coordinator.start(current, self._rules(current), self.store, self.connection,
                                    progress=progress, on_failure=self._actor_failed,
                                    capabilities=caps, timers=timers)
            pinged(ref, self.ask_timeout)
            sup.config = current
            return ref

        sup = Supervised(name, "coordinator", start, config=integration)
        self._first_start(sup, self.coordinators, supervise)

    def _routes(self, cfg: Config) -> dict[str, Route]:
        routes = {}
        for name, conn in cfg.connections.items():
            cls = self.registry.connector(conn.kind)
            if Capability.PARSE_WEBHOOKS not in cls.capabilities:
                continue
            consumers = tuple(i.name for i in cfg.integrations_from(name))
            disabled = tuple(i.name for i in cfg.integrations.values()
                             if i.source == name and not i.enabled)
            handshake = getattr(cls, "webhook_handshake", None)
            routes[name] = Route(name, cls.webhook_parser(name, conn.options), consumers,
                                 disabled, handshake(name, conn.options) if handshake else None)
        return routes

    def _register_webhooks(self, cfg: Config) -> None:
        for name, conn in cfg.connections.items():
            cls = self.registry.connector(conn.kind)
            if (Capability.PARSE_WEBHOOKS not in cls.capabilities
                    or cls.ensure_webhook is Connector.ensure_webhook):  # registers nothing
                continue
            url = f"{cfg.receiver.public_url.rstrip('/')}/webhooks/{name}"
            try:
                self.connection(name).ensure_webhook(url).get(timeout=120)
                log.info("webhook.registered", connection=name, url=url)
            except Exception as exc:
                log.error("webhook.registration_failed", connection=name,
                          error=f"{type(exc).__name__}: {exc}")

    def _resume_interrupted(self) -> None:
        """Resume each integration whose latest full sync did not end: it was running when
        the process stopped (marked interrupted now), or it was marked interrupted by a
        start that itself stopped before resuming it."""
        self.store.interrupt_running()
        for name in self.coordinators:
            latest = self.store.latest_run(name, "full")
            if latest is None or latest["status"] != "interrupted":
                continue
            log.warning("full_sync.interrupted", integration=name, run_id=latest["id"],
                        processed=latest["processed"])
            try:
                self._coordinator(name).start_full_sync(latest).get(timeout=self.ask_timeout)
            except Exception as exc:
                log.error("full_sync.resume_failed", integration=name, error=str(exc))

    # -- the main loop -------------------------------------------------------------------------

    def _main_loop(self) -> None:
        interval = systemd.watchdog_interval()
        period = min(1.0, interval / 2) if interval else 1.0
        while not self._stop_flag.is_set():
            self._wake.wait(period)
            self._wake.clear()
            if self._stop_flag.is_set():
                break
            if self._reload_flag.is_set():
                self._start_reload_worker()
            if self._lock.acquire(blocking=False):  # a reload is changing the actors
                try:
                    self._supervise()
                finally:
                    self._lock.release()
            self._housekeeping()
            self.liveness.probe()
            if self.liveness.alive():  # the actors and the receiver answer (health.py)
                systemd.watchdog()

    def _housekeeping(self) -> None:
        """Applied events are kept a week (to answer questions), then pruned hourly."""
        now = time.time()
        if now - getattr(self, "_pruned_at", 0.0) < 3600:
            return
        self._pruned_at = now
        try:
            pruned = self.store.prune_done(older_than=7 * 86400)
            explain.prune(self.store, self.config.daemon.journal_days)
            if pruned:
                log.info("inbox.pruned", events=pruned)
        except Exception as exc:  # a busy database now is no reason to stop
            log.warning("inbox.prune_failed", error=str(exc))

    def _coordinator(self, name: str):
        sup = self.coordinators.get(name)
        if sup is None:
            raise KeyError(f"no integration named {name!r}")
        if not sup.alive():
            raise SyncdError(f"integration {name} is restarting after a failure")
        return sup.ref.proxy()

    def _notify_coordinators(self, names: list[str]) -> None:
        for name in names:
            sup = self.coordinators.get(name)
            if sup is not None and sup.alive():
                try:
                    sup.proxy().notify.defer()
                except pykka.ActorDeadError:
                    pass

    # -- stopping ----------------------------------------------------------------------------

    def _stop_all(self) -> None:
        timeout = self.config.daemon.stop_timeout if self.config else 30.0
        deadline = time.time() + timeout
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        if self.receiver_app is not None:
            self.receiver_app.draining = True
        for server in (self.receiver, self.admin, self.metrics_server):
            if server is not None:
                server.stop(timeout=max(0.5, min(5.0, deadline - time.time())))
        # coordinators first (they call the connections), then the connections
        for sup in [*reversed(self.coordinators.values()), *reversed(self.connections.values())]:
            if sup.ref is not None:
                try:
                    sup.ref.stop(block=True, timeout=max(0.5, deadline - time.time()))
                except (pykka.Timeout, pykka.ActorDeadError):
                    log.warning("actor.stop_timeout", actor=sup.name)
        for ref in pykka.ActorRegistry.get_all():
            if any(ref is s.ref for s in (*self.connections.values(),
                                          *self.coordinators.values())):
                log.warning("actor.still_running", actor=str(ref))
                ref.stop(block=False)
        if self.store is not None:
            self.store.close()
        log.info("daemon.stopped")
