"""The daemon's actors started from its current config (an object the daemon holds as
``daemon.actors``): a connection actor per ``[connections.*]``, a coordinator per enabled
integration, each handed to the :class:`~syncd.app.supervision.Supervisor`; and the
receiver's routes from the same config.

:attr:`Actors.config` is the daemon's current config: a reload
(:class:`syncd.app.reload.Reloader`) switches it while it restarts what changed.
"""

from __future__ import annotations

from typing import Any, cast

import pykka
import structlog

from syncd.app.scheduler import Scheduler
from syncd.app.supervision import Supervised, Supervisor, pinged
from syncd.config.model import Config, IntegrationConfig
from syncd.config.needs import needs
from syncd.connectors.capabilities import Capability, WebhookSource
from syncd.connectors.connection import ConnectionActor, typed_proxy
from syncd.connectors.connector import Connector
from syncd.connectors.lanes import BULK, REALTIME, LaneState
from syncd.connectors.plugins import Registry
from syncd.engine.coordinator import Coordinator
from syncd.engine.ledgerstore import StoreLedger
from syncd.engine.linkops import LinkRegistry, Links
from syncd.engine.progress import Progress
from syncd.engine.rules import Rules
from syncd.engine.store import Store
from syncd.exceptions import SyncdError
from syncd.records import SchemaNeeds
from syncd.web.receiver import Route

log = structlog.get_logger("syncd.app.daemon")


def connector_class(registry: Registry, kind: str) -> type[Connector]:
    """The connector class of ``kind`` (the config loader checked that a plugin has it)."""
    cls = registry.connector(kind)
    if cls is None:
        raise SyncdError(f"no installed plugin provides connections of kind {kind!r}")
    return cls


class Actors:
    """Starts connection and coordinator actors from :attr:`config`."""

    def __init__(self, config: Config, registry: Registry, store: Store,
                 supervisor: Supervisor, scheduler: Scheduler, progress: dict[str, Progress],
                 *, ask_timeout: float):
        #: The daemon's current config.
        self.config = config
        #: Set while a reload moves between two configs: per connection, what either uses.
        self.wide_needs: dict[str, SchemaNeeds] | None = None
        self.registry = registry
        self.store = store
        self.supervisor = supervisor
        #: Whose one-shot jobs are the coordinators' timers (:mod:`syncd.engine.timers`).
        self.scheduler = scheduler
        self.progress = progress
        #: Seconds to wait for an actor's answer (a start's ping, a reload's set_rules).
        self.ask_timeout = ask_timeout
        #: The links connectors run themselves (``syncd status``, runs, confirm).
        self.links = LinkRegistry(store)

    def start_connection(self, name: str, supervise: bool = False) -> None:
        """Start a connection's actor, or its two lanes' when its connector has them
        (:mod:`syncd.connectors.lanes`). It raises when the start fails, unless
        ``supervise``: then the failure is recorded and the main loop retries, as for a
        crashed actor."""
        conn_cfg = self.config.connections[name]
        cls = connector_class(self.registry, conn_cfg.kind)

        def start() -> pykka.ActorRef[Any]:
            connector = cls(name, conn_cfg.options)
            connector.state_dir = self.config.daemon.state_dir
            connector.ledger = StoreLedger(self.store, name, lambda: [
                i.name for i in self.config.integrations.values() if i.source == name])
            connector.peers = {n: (c.kind, c.options) for n, c in
                               self.config.connections.items() if n != name}
            connector.links = Links(self.links, name)
            connector.set_needs(self.needs_of(name))  # before its first read
            failures: list[BaseException] = []

            def failed(actor: str, exc: BaseException) -> None:
                failures.append(exc)
                self.supervisor.actor_failed(actor, exc)

            states = {BULK: LaneState(BULK)}
            ref = ConnectionActor.start(connector, on_failure=failed, state=states[BULK])
            pinged(ref, self.ask_timeout, failures)
            realtime = None
            if cls.two_lanes:  # a second actor on the same connector: it only calls it
                states[REALTIME] = LaneState(REALTIME)
                realtime = ConnectionActor.start(connector, on_failure=failed, lane=REALTIME,
                                                 owner=False, state=states[REALTIME])
                try:
                    pinged(realtime, self.ask_timeout, failures)
                except BaseException:
                    ref.stop(block=False)
                    raise
            sup.realtime, sup.lanes = realtime, states
            return ref

        sup = Supervised(name, "connection", start, config=conn_cfg)
        self.supervisor.first_start(sup, supervise)

    def start_coordinator(self, integration: IntegrationConfig, supervise: bool = False
                          ) -> None:
        name = integration.name
        progress = self.progress.setdefault(name, Progress())

        def start() -> pykka.ActorRef[Any]:
            current = self.config.integrations[name]
            caps = {role: connector_class(self.registry, self.config.connections[
                getattr(current, role)].kind).capabilities for role in ("source", "destination")}
            ref = Coordinator.start(current, self.rules(current), self.store,
                                    self.supervisor.connection,
                                    realtime=self.supervisor.realtime, progress=progress,
                                    on_failure=self.supervisor.actor_failed, capabilities=caps,
                                    timers=self.scheduler.timers(name))
            pinged(ref, self.ask_timeout)
            sup.config = current
            return ref

        sup = Supervised(name, "coordinator", start, config=integration)
        self.supervisor.first_start(sup, supervise)

    def needs_of(self, name: str) -> SchemaNeeds:
        """What the enabled integrations use of connection ``name``; while a reload moves
        between two configs, what either uses (see :class:`syncd.app.reload.Reloader`)."""
        if self.wide_needs is not None and name in self.wide_needs:
            return self.wide_needs[name]
        return needs(self.config, self.registry).get(name, SchemaNeeds("none"))

    def tell_needs(self) -> None:
        """Tell every running connection what the integrations use of it now."""
        for name, sup in list(self.supervisor.connections.items()):
            ref = sup.realtime or sup.ref  # one connector: the lane less likely busy
            if ref is not None and ref.is_alive():
                typed_proxy(ref).set_needs(self.needs_of(name)).get(timeout=self.ask_timeout)

    def rules(self, integration: IntegrationConfig) -> Rules:
        dest_kind = self.config.connections[integration.destination].kind
        dest_cls = connector_class(self.registry, dest_kind)
        return Rules.from_integration(integration, dest_cls.canonical_attribute)

    def set_rules(self, sup: Supervised, integration: IntegrationConfig) -> None:
        """Give a running coordinator the rules of its changed section."""
        sup.proxy().set_rules(self.rules(integration), integration).get(
            timeout=self.ask_timeout)
        sup.config = integration

    def routes(self, config: Config) -> dict[str, Route]:
        """The receiver's route per connection that takes webhooks, under ``config``."""
        out = {}
        for name, conn in config.connections.items():
            cls = connector_class(self.registry, conn.kind)
            if Capability.PARSE_WEBHOOKS not in cls.capabilities:
                continue
            # the capability promises the protocol (checked when the plugin loaded)
            source = cast(type[WebhookSource], cls)
            consumers = tuple(i.name for i in config.integrations_from(name))
            disabled = tuple(i.name for i in config.integrations.values()
                             if i.source == name and not i.enabled)
            handshake = getattr(cls, "webhook_handshake", None)
            followers = tuple(
                other for other, c in config.connections.items() if other != name
                and name in connector_class(self.registry, c.kind).follows(other, c.options))
            out[name] = Route(name, source.webhook_parser(name, conn.options), consumers,
                              disabled, handshake(name, conn.options) if handshake else None,
                              followers)
        return out

    def register_webhooks(self, config: Config, public_url: str) -> None:
        """Register the receiver's URL with each partner that takes one (a thread at start)."""
        for name, conn in config.connections.items():
            cls = connector_class(self.registry, conn.kind)
            if (Capability.PARSE_WEBHOOKS not in cls.capabilities
                    or cls.ensure_webhook is Connector.ensure_webhook):  # registers nothing
                continue
            url = f"{public_url.rstrip('/')}/webhooks/{name}"
            try:
                self.supervisor.connection(name).ensure_webhook(url).get(timeout=120)
                log.info("webhook.registered", connection=name, url=url)
            except Exception as exc:
                log.error("webhook.registration_failed", connection=name,
                          error=f"{type(exc).__name__}: {exc}")
