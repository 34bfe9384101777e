"""The daemon: start order, signals, reload, supervision, stop order, systemd notifications.

Start order: plugins → config → logs → state → connection actors (pinged) → coordinators
(pinged) → receiver → admin endpoint → interrupted runs resumed → READY, with the preflight
(the accounts against the config, :mod:`syncd.app.daemon_preflight`) started in the background
before READY, and again after each applied reload. Stop order is the
reverse, inside one ``finally``: the receiver drains first (new webhooks get 503, so their
senders retry), then coordinators finish their current step, then connections close.

Signal handlers only set flags; the main thread acts on them:

- SIGHUP: reload, in a worker thread while the main loop goes on pinging the watchdog (see
  :mod:`syncd.app.reload`, ``daemon.reloader``). The new config is validated whole; on any error, also while it is
  applied, the daemon logs each problem and runs on with the old config. Only what changed
  restarts.
- SIGTERM / SIGINT: stop.

A connection or coordinator actor that dies is restarted with back-off by the main loop (see
:mod:`syncd.app.supervision`, ``daemon.supervisor``); its failures and restarts show in
``syncd status``.

The daemon composes its parts, each given what it needs: ``supervisor`` (the actors by name),
``actors`` (starts them from the current config, :mod:`syncd.app.actors`), ``preflights``,
``reloader``, ``control`` (what the admin endpoint asks), ``liveness`` (the watchdog's
condition). The parts made at start are None before it.
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
from syncd.app.actors import Actors
from syncd.app.admin import AdminApp, ensure_token
from syncd.app.control import Control
from syncd.app.daemon_preflight import Preflights, through_actors
from syncd.app.health import Liveness, OpsApp
from syncd.app.reload import Reloader
from syncd.app.scheduler import Scheduler
from syncd.app.supervision import Supervised, Supervisor
from syncd.config.model import Config, IntegrationConfig
from syncd.connectors import plugins
from syncd.connectors.connection import ConnectionProxy
from syncd.engine import explain
from syncd.engine.progress import Progress
from syncd.engine.rules import Rules
from syncd.engine.store import Store
from syncd.exceptions import ConfigErrors, SyncdError
from syncd.web.receiver import WebhookApp, start_receiver
from syncd.web.tasks import TaskEndpoint, resolver
from syncd.web.wsgi import ServerThread

log = structlog.get_logger("syncd.app.daemon")

ASK_TIMEOUT = 30.0


class Daemon:
    #: Seconds to wait for an actor's answer (a start's ping, a reload's set_rules).
    ask_timeout = ASK_TIMEOUT

    def __init__(self, config_path: str, *, registry: plugins.Registry | None = None,
                 install_signals: bool = True, configure_logging: bool = True):
        self.config_path = config_path
        self.registry = registry if registry is not None else plugins.load()
        self.install_signals = install_signals
        self.configure_logging = configure_logging
        self._config: Config | None = None  # as loaded, until the actors hold it
        self.store: Store | None = None
        self.progress: dict[str, Progress] = {}
        self.needs_full_sync: dict[str, str] = {}
        self.receiver_app: WebhookApp | None = None
        self.receiver: ServerThread | None = None
        self.admin: ServerThread | None = None
        self.metrics_server: ServerThread | None = None
        self.admin_token: str | None = None
        self.scheduler: Scheduler | None = None
        self.started = threading.Event()
        self.stopped = threading.Event()
        self._stop_flag = threading.Event()
        self._reload_flag = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.RLock()
        self._pruned_at = 0.0
        self.started_at = time.time()
        #: The actors by name, kept alive by the main loop.
        self.supervisor = Supervisor(self.progress, self._wake)
        self.connections: dict[str, Supervised] = self.supervisor.connections
        self.coordinators: dict[str, Supervised] = self.supervisor.coordinators
        #: Starts the actors from the current config (made at start).
        self.actors: Actors | None = None
        #: The accounts against the config, at start and after each reload.
        self.preflights = Preflights(self.current_config, self.registry,
                                     through_actors(self.supervisor.connection),
                                     self._stop_flag)
        #: Reloads with rollback (made at start).
        self.reloader: Reloader | None = None
        self.liveness = Liveness(self)
        #: What the admin endpoint (and so the CLI) asks: status, runs, sync start ...
        self.control = Control(self)
        self.ops: OpsApp | None = None

    @property
    def config(self) -> Config | None:
        """The current config (None until loaded)."""
        return self.actors.config if self.actors is not None else self._config

    def current_config(self) -> Config:
        """The current config; raises before it is loaded."""
        config = self.config
        if config is None:
            raise SyncdError("syncd is starting: its config is not loaded yet")
        return config

    def running(self) -> tuple[Config, Store]:
        """The current config and the state store; raises before the start made them."""
        if self.store is None:
            raise SyncdError("syncd is starting")
        return self.current_config(), self.store

    @property
    def reload_errors(self) -> list[str]:
        return self.reloader.errors if self.reloader is not None else []

    @property
    def last_reload(self) -> dict[str, Any] | None:
        return self.reloader.last if self.reloader is not None else None

    # -- entry point -------------------------------------------------------------------------

    def serve(self) -> int:
        """Run until stopped. Returns the process exit code."""
        try:
            config = self._config = config_mod.load(self.config_path, self.registry)
        except ConfigErrors as exc:
            for error in exc.errors:
                log.error("config.invalid", error=str(error))
            self.stopped.set()
            return 78  # EX_CONFIG
        if self.configure_logging:
            logs.configure(config.daemon.log_level, config.daemon.log_format)
        if self.install_signals:
            self._install_signals()
        try:
            self._start(config)
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
            if self.reloader is not None:
                self.reloader.wait()
            self._stop_all()
            self.stopped.set()
        return 0

    def request_stop(self) -> None:
        self._stop_flag.set()
        self._wake.set()

    def request_reload(self) -> None:
        self._reload_flag.set()
        self._wake.set()

    def reload(self) -> dict[str, Any]:
        """Read the config again now (``syncd reload``, :meth:`Reloader.reload`)."""
        if self.reloader is None:
            raise SyncdError("syncd is starting; reload it once it runs")
        return self.reloader.reload()

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

    def _start(self, cfg: Config) -> None:
        os.makedirs(cfg.daemon.state_dir, mode=0o700, exist_ok=True)
        store = self.store = Store(os.path.join(cfg.daemon.state_dir, "syncd.db"),
                                   durability=cfg.daemon.durability)
        # before the coordinators, whose timers are its jobs; started once they all run
        scheduler = self.scheduler = Scheduler(
            self._send_job, state_file=os.path.join(cfg.daemon.state_dir, "scheduler.json"))
        actors = self.actors = Actors(cfg, self.registry, store, self.supervisor, scheduler,
                                      self.progress, ask_timeout=self.ask_timeout)
        for name in cfg.connections:
            actors.start_connection(name)
        for integration in cfg.integrations.values():
            if integration.enabled:
                actors.start_coordinator(integration)
        self._resume_interrupted(store)  # before any webhook: events wait for the resumed sync
        receiver_app = self.receiver_app = WebhookApp(
            store=store, max_body=cfg.receiver.max_body_bytes, notify=self.supervisor.notify,
            follow=self._follow)
        receiver_app.set_routes(actors.routes(cfg))
        receiver_app.router.add(  # tasks from automation flows: syncd/web/tasks.py
            "POST", "/tasks/{integration}", TaskEndpoint(store, resolver(self)).handle)
        self.receiver = start_receiver(receiver_app, cfg.receiver.host, cfg.receiver.port,
                                       cfg.receiver.threads,
                                       connection_limit=cfg.receiver.connection_limit)
        self.reloader = Reloader(
            self.config_path, actors, lock=self._lock, needs_full_sync=self.needs_full_sync,
            receiver=receiver_app, scheduler=scheduler, preflights=self.preflights,
            start_sync=self.control.start_sync, requested=self._reload_flag,
            stopping=self._stop_flag, wake=self._wake)
        token_file = cfg.admin.token_file or os.path.join(cfg.daemon.state_dir, "admin.token")
        self.admin_token = ensure_token(token_file)
        self.ops = OpsApp(self)  # /metrics, /healthz, /readyz (health.py)
        self.admin = ServerThread(AdminApp(self.control, self.admin_token, self.ops), cfg.admin.host,
                                  cfg.admin.port, threads=4, name="admin").start()
        if cfg.admin.metrics_port:
            self.metrics_server = ServerThread(self.ops, cfg.admin.metrics_host,
                                               cfg.admin.metrics_port, threads=2,
                                               name="metrics").start()
        self.supervisor.notify(list(self.coordinators))  # apply what was left in the inbox
        scheduler.reconcile(actors.config)
        scheduler.start()
        self.preflights.start("start")  # in the background: the accounts against the config
        if cfg.receiver.public_url:
            threading.Thread(target=actors.register_webhooks,
                             args=(cfg, cfg.receiver.public_url), daemon=True,
                             name="webhook-registration").start()

    def _send_job(self, integration: str, job: str, params: dict[str, Any]) -> None:
        """A scheduled job fired (scheduler thread): tell the coordinator; never block."""
        sup = self.coordinators.get(integration)
        if sup is None or not sup.alive():
            raise SyncdError(f"integration {integration} is not running")  # Scheduler logs it
        sup.proxy().run_job.defer(job, params)

    def _follow(self, connection: str, followers: tuple[str, ...], events: list) -> None:
        """An accepted delivery's events for the connections that follow ``connection``
        (receiver thread, after the answer): told in their real-time lane; never block."""
        for name in followers:
            try:
                self.supervisor.realtime(name).peer_events(connection, events)  # not awaited
            except Exception as exc:  # restarting: its own catch-up (a poll) finds them
                log.warning("webhook.follower_unreachable", connection=name,
                            error=f"{type(exc).__name__}: {exc}")

    def connection(self, name: str) -> ConnectionProxy:
        """The typed proxy of connection ``name`` (dry runs and tasks ask through it)."""
        return self.supervisor.connection(name)

    def _rules(self, integration: IntegrationConfig) -> Rules:
        """The rules of an integration's section (a dry run's, :mod:`syncd.engine.dryrun`)."""
        if self.actors is None:
            raise SyncdError("syncd is starting")
        return self.actors.rules(integration)

    def _resume_interrupted(self, store: Store) -> None:
        """Resume each integration whose latest full sync did not end: it was running when
        the process stopped (marked interrupted now), or it was marked interrupted by a
        start that itself stopped before resuming it."""
        store.interrupt_running()
        for name in self.coordinators:
            latest = store.latest_run(name, "full")
            if latest is None or latest["status"] != "interrupted":
                continue
            log.warning("full_sync.interrupted", integration=name, run_id=latest["id"],
                        processed=latest["processed"])
            try:
                self.supervisor.coordinator(name).start_full_sync(latest).get(timeout=self.ask_timeout)
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
            if self._reload_flag.is_set() and self.reloader is not None:
                self.reloader.start_worker()
            if self._lock.acquire(blocking=False):  # a reload is changing the actors
                try:
                    self.supervisor.supervise(self.current_config().daemon.restart_backoff_max)
                finally:
                    self._lock.release()
            self._housekeeping()
            self.liveness.probe()
            if self.liveness.alive():  # the actors and the receiver answer (health.py)
                systemd.watchdog()

    def _housekeeping(self) -> None:
        """Applied events are kept a week (to answer questions), then pruned hourly."""
        now = time.time()
        if now - self._pruned_at < 3600:
            return
        self._pruned_at = now
        try:
            config, store = self.running()
            pruned = store.prune_done(older_than=7 * 86400)
            explain.prune(store, config.daemon.journal_days)
            if pruned:
                log.info("inbox.pruned", events=pruned)
        except Exception as exc:  # a busy database now is no reason to stop
            log.warning("inbox.prune_failed", error=str(exc))

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
            for ref in sup.refs():  # a real-time lane before the bulk lane owning the connector
                try:
                    ref.stop(block=True, timeout=max(0.5, deadline - time.time()))
                except (pykka.Timeout, pykka.ActorDeadError):
                    log.warning("actor.stop_timeout", actor=sup.name)
        for ref in pykka.ActorRegistry.get_all():
            if any(ref in s.refs() for s in self.supervisor.all()):
                log.warning("actor.still_running", actor=str(ref))
                ref.stop(block=False)
        if self.store is not None:
            self.store.close()
        log.info("daemon.stopped")
