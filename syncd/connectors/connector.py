"""The connector API a plugin implements.

A connector is a plain class (no actor, no threads of its own needed). It declares:

- ``kind``: the word used in ``[connections.NAME] kind = "..."``;
- ``options``: the keys of its connection section (:class:`syncd.config.schema.Option`);
- ``capabilities``: what it can do, from :class:`~syncd.connectors.capabilities.Capability`, each a
  typed protocol of methods (:mod:`syncd.connectors.capabilities`). The core only calls a method whose
  capability the connector declares, and the config is checked against them (a destination
  must ``write_profiles``, ``delete_unmatched`` needs ``delete_profiles`` ...).

The core runs each configured connection as a :class:`syncd.connectors.connection.ConnectionActor`
and calls it through its typed proxy: the actor owns the
connector instance, so the connector's HTTP session, auth and budgets are used from one place.
Methods are called with ``ask`` (``proxy.method(...)`` returns a future); a connector may use
threads inside a call (e.g. to write a batch concurrently within its rate budget).

A connector that sets :attr:`Connector.two_lanes` is called from two actors at once, a bulk
and a real-time lane (:mod:`syncd.connectors.lanes`): it promises that any two of its
methods may run at the same time in two threads, sharing its one client, budgets, holds and
token. One that does not keeps a single lane: every call in turn.

Webhook parsing is the exception: it runs in the receiver's threads, before anything is
stored, through :meth:`Connector.webhook_parser`, which must be cheap and thread-safe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import structlog

from syncd.config.schema import Option
from syncd.connectors.capabilities import (
    PROTOCOLS,
    REQUIRED_METHODS,
    Capability,
    SchemaChecker,
    WebhookParser,
)
from syncd.connectors.ledger import Ledger
from syncd.records import Event, SchemaNeeds, SchemaProblem

__all__ = ["Capability", "Connector", "PROTOCOLS", "REQUIRED_METHODS", "SchemaChecker",
           "WebhookParser", "missing_methods"]

log = structlog.get_logger("syncd.connectors.connector")


class Connector:
    """Base class of connectors. Subclass it, set the class attributes, implement the methods
    your capabilities name."""

    kind: ClassVar[str] = ""
    description: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    options: ClassVar[tuple[Option, ...]] = ()
    #: For destinations: how the e-mail and source-id attributes are called there. The
    #: rules put ``email`` and the record id into these automatically.
    email_attribute: ClassVar[str | None] = None
    id_attribute: ClassVar[str | None] = None
    #: The import path of the emulator class of the partner's API (for ``syncd emulate`` and
    #: the sandbox), e.g. ``"syncd_tribe.emulator:TribeEmulator"``. Loaded only on demand.
    emulator: ClassVar[str | None] = None
    #: The daemon's state directory (set by the daemon before ``start``; None in tools and
    #: tests that give none). A connector may keep small files of its own under it (e.g. an
    #: access token that must outlive a restart), named after its connection.
    state_dir: str | None = None
    #: True: any two of its methods may run at once, in two threads (the connection's bulk
    #: and real-time lanes, :mod:`syncd.connectors.lanes`), sharing one HTTP client, rate
    #: budget, ``Retry-After`` holds and token: whatever its calls share is guarded, and a
    #: worker pool it uses is per lane (:class:`~syncd.connectors.lanes.LanePools`). False:
    #: one lane, every call in turn (``docs/plugins.md``, "Two lanes").
    two_lanes: ClassVar[bool] = False

    def __init__(self, name: str, config: Mapping[str, Any]):
        #: The connection's name (the key under ``[connections]``).
        self.name = name
        #: The validated section, with defaults filled and secrets as ``Secret``.
        self.config = config
        self.log = log.bind(connection=name, kind=self.kind)
        #: What the connector must remember across restarts (counts of messages it
        #: discarded, with notes; the ids syncd holds links for): kept in the state store
        #: once the daemon sets it before ``start``, in memory until then
        #: (:mod:`syncd.connectors.ledger`).
        self.ledger: Ledger = Ledger()

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Called once in the actor's thread before any other call (open sessions here)."""

    def stop(self) -> None:
        """Called once when the actor stops (close sessions here)."""

    def check(self) -> dict[str, Any]:
        """A cheap call that proves the connection works (auth included). Returns facts to
        show in ``syncd status``."""
        return {}

    def stats(self) -> dict[str, Any]:
        """Counters to show in ``syncd status`` (requests, retries ...)."""
        return {}

    @classmethod
    def validate(cls, name: str, config: Mapping[str, Any]) -> list[str]:
        """Cross-key checks beyond the option types; returns problems as
        ``"key: message (fix: ...)"`` strings."""
        return []

    @classmethod
    def key_space(cls, name: str, config: Mapping[str, Any]) -> tuple[str, str] | None:
        """Sources whose record ids are integers unique only within the partner's
        instance: ``(prefix, instance)``, a record's id (its profile key in the
        destination) being ``prefix`` and the partner's id, ``instance`` naming the
        partner's system (e.g. its URL). None (the default): ids unique everywhere (GUIDs).
        The config check refuses two connections of different instances into one
        destination whose prefixes could give one key (:mod:`syncd.config.keyspaces`)."""
        return None

    @classmethod
    def validate_needs(cls, name: str, config: Mapping[str, Any], needs: SchemaNeeds
                       ) -> list[SchemaProblem]:
        """Offline checks of the connection's options against what the enabled
        integrations use of it (``needs``, see :func:`syncd.config.needs.needs`), e.g. a
        consent mapping on a source configured without labels. Problems name the config key
        to change and the fix."""
        return []

    #: What the enabled integrations use of this connection, given by the core with
    #: :meth:`set_needs` before the first read and again on every reload; None: not told,
    #: read everything.
    needs: SchemaNeeds | None = None

    def set_needs(self, needs: SchemaNeeds) -> None:
        """The names the integrations use in this connection (field paths, labels, groups
        ...). A source may read only what they need: e.g. expand a navigation only when a
        field path reaches it, labels only when a consent or selection mapping uses them."""
        self.needs = needs

    @classmethod
    def sandbox_config(cls, emulator: Any) -> dict[str, Any]:
        """The connection section that points this connector at a running emulator."""
        raise NotImplementedError

    @classmethod
    def sandbox_rules(cls) -> dict[str, Any]:
        """Source connectors: the integration settings the sandbox demo uses with this
        source (``conditions``, ``fields`` ... as in ``[integrations.NAME]``)."""
        return {}

    @classmethod
    def canonical_attribute(cls, name: str) -> str:
        """The destination's full name for an attribute named ``name`` in the config (a
        destination may accept short names, e.g. APSIS ``firstname`` for
        ``com.apsis1.attributes.firstname``)."""
        return name

    #: The other connections of the config, ``name -> (kind, options)``, set by the daemon
    #: before ``start``: for a connector that links two partners itself (e.g. the
    #: per-user Outlook link reads and writes the Tribe connection it names).
    peers: Mapping[str, tuple[str, Mapping[str, Any]]] = {}

    #: The runs, guard and stops of links the connector runs itself
    #: (:class:`syncd.engine.linkops.Links`), set by the daemon before ``start``; None
    #: outside a daemon.
    links: Any = None

    @classmethod
    def follows(cls, name: str, config: Mapping[str, Any]) -> tuple[str, ...]:
        """The other connections whose webhook events this connection wants too (a peer
        it links itself, e.g. the Outlook link follows its Tribe connection): the receiver
        hands each accepted delivery's events to :meth:`peer_events` as well, after its
        integrations got them. Default: none."""
        return ()

    def peer_events(self, connection: str, events: Sequence[Event]) -> None:
        """Events a followed connection's webhook delivered (see :meth:`follows`), called
        in the connector's actor after the delivery was accepted. Not kept in the inbox: a
        connector that follows a connection keeps its own catch-up (e.g. a poll) for
        anything missed. Default: ignored."""
        return None

    def ensure_webhook(self, url: str) -> str | None:
        """Webhook sources (:attr:`Capability.PARSE_WEBHOOKS`) may register the receiver's
        ``url`` with the partner here (called once at start); returns the partner's id of
        the subscription. The default registers nothing (the operator does it)."""
        return None

    def has(self, capability: Capability) -> bool:
        return capability in self.capabilities


def missing_methods(cls: type[Connector]) -> list[str]:
    """The methods ``cls``'s capabilities require and that it does not define."""
    missing = []
    for cap in cls.capabilities:
        for method in REQUIRED_METHODS.get(Capability(cap), ()):
            if not callable(getattr(cls, method, None)):
                missing.append(f"{method} (for {cap})")
    return missing
