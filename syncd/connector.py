"""The connector API a plugin implements, and the actor that runs one connection.

A connector is a plain class (no actor, no threads of its own needed). It declares:

- ``kind``: the word used in ``[connections.NAME] kind = "..."``;
- ``options``: the keys of its connection section (:class:`syncd.config.schema.Option`);
- ``capabilities``: what it can do, from :class:`Capability`. The core only calls a method
  whose capability the connector declares, and the config is checked against them (a
  destination must ``write_profiles``, a source must ``read_records`` ...).

The core runs each configured connection as a :class:`ConnectionActor`: the actor owns the
connector instance, so the connector's HTTP session, auth and budgets are used from one place.
Methods are called with ``ask`` (``proxy.method(...)`` returns a future); a connector may use
threads inside a call (e.g. to write a batch concurrently within its rate budget).

Webhook parsing is the exception: it runs in the receiver's threads, before anything is
stored, through :meth:`Connector.webhook_parser`, which must be cheap and thread-safe.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Protocol, cast

import pykka
import structlog

from syncd.config.schema import Option
from syncd.records import (
    Event,
    Page,
    Profile,
    Record,
    SchemaNeeds,
    SchemaProblem,
    WriteResult,
)

log = structlog.get_logger("syncd.connector")


class Capability(enum.StrEnum):
    """What a connector can do. Each names the methods it obliges the connector to have."""

    #: ``read_page(cursor, page_size, since=None) -> Page`` and
    #: ``read_records(events) -> list[Record]`` (read back what webhooks name).
    READ_RECORDS = "read_records"
    #: ``webhook_parser(name, config)`` (a classmethod) and optionally
    #: ``ensure_webhook(url) -> str`` (register the receiver's URL with the partner).
    PARSE_WEBHOOKS = "parse_webhooks"
    #: ``write_profiles(profiles, known) -> list[WriteResult]``.
    WRITE_PROFILES = "write_profiles"
    #: ``delete_profiles(keys) -> list[WriteResult]``.
    DELETE_PROFILES = "delete_profiles"
    #: ``read_consent_changes(cursor) -> (list[ConsentChange], cursor)``: consents changed
    #: in the destination (unsubscribes), oldest first, to write back to the source. The
    #: cursor is opaque; ``None`` on the first call means "from now on".
    READ_CONSENT_CHANGES = "read_consent_changes"
    #: ``write_consents(record_id, labels: dict[str, bool]) -> WriteResult``: set (True) or
    #: remove (False) opt-in labels / consent types on a record (back to a CRM).
    WRITE_CONSENTS = "write_consents"
    #: ``read_responses(cursor) -> (list[dict], cursor)``: e-mail and SMS events.
    READ_RESPONSES = "read_responses"
    #: ``write_responses(record_id, responses) -> WriteResult`` (back to a CRM).
    WRITE_RESPONSES = "write_responses"
    #: ``create_task(task: dict) -> str``.
    CREATE_TASKS = "create_tasks"
    #: ``read_group(name) -> list[str]``: the record ids of a selection or overview.
    READ_GROUPS = "read_groups"
    #: ``bulk_write(profiles) -> list[WriteResult]``: write many profiles in one import
    #: (large full syncs), one result per profile in input order.
    BULK_WRITE = "bulk_write"
    #: ``read_record(record_id) -> Record | None``: a direct read of one record by its key,
    #: ``None`` only when the source answers "not found" (404). The core deletes a profile
    #: (``delete_unmatched``) only after this read confirms it; without it, never.
    READ_RECORD = "read_record"
    #: ``check_schema(needs: SchemaNeeds) -> list[SchemaProblem]``: compare the names the
    #: config uses (``needs``, and the connection's own options) with what the account
    #: really has (its schema, definitions). Returns the problems; raises only when the
    #: account cannot be reached or read (refused, 401 ...), which the core reports as a
    #: connection error, not a config error. Used by ``syncd check-config --online`` and the
    #: daemon's preflight (:mod:`syncd.preflight`). A connector without it is not checked.
    CHECK_SCHEMA = "check_schema"


#: The methods each capability requires, checked when a plugin is loaded.
REQUIRED_METHODS: dict[Capability, tuple[str, ...]] = {
    Capability.READ_RECORDS: ("read_page", "read_records"),
    Capability.PARSE_WEBHOOKS: ("webhook_parser",),
    Capability.WRITE_PROFILES: ("write_profiles",),
    Capability.DELETE_PROFILES: ("delete_profiles",),
    Capability.READ_CONSENT_CHANGES: ("read_consent_changes",),
    Capability.WRITE_CONSENTS: ("write_consents",),
    Capability.READ_RESPONSES: ("read_responses",),
    Capability.WRITE_RESPONSES: ("write_responses",),
    Capability.CREATE_TASKS: ("create_task",),
    Capability.READ_GROUPS: ("read_group",),
    Capability.BULK_WRITE: ("bulk_write",),
    Capability.READ_RECORD: ("read_record",),
    Capability.CHECK_SCHEMA: ("check_schema",),
}

#: Parses one webhook delivery: ``(headers, raw_body) -> events``. Raises
#: :class:`syncd.exceptions.WebhookRejected` (401 bad signature, 400 bad body ...).
WebhookParser = Callable[[Mapping[str, str], bytes], list[Event]]


class SchemaChecker(Protocol):
    """A connector that declares :attr:`Capability.CHECK_SCHEMA`."""

    def check_schema(self, needs: SchemaNeeds) -> list[SchemaProblem]: ...


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

    def __init__(self, name: str, config: Mapping[str, Any]):
        #: The connection's name (the key under ``[connections]``).
        self.name = name
        #: The validated section, with defaults filled and secrets as ``Secret``.
        self.config = config
        self.log = log.bind(connection=name, kind=self.kind)

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
    def validate_needs(cls, name: str, config: Mapping[str, Any], needs: SchemaNeeds
                       ) -> list[SchemaProblem]:
        """Offline checks of the connection's options against what the enabled
        integrations use of it (``needs``, see :func:`syncd.preflight.needs`), e.g. a
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


class ConnectionActor(pykka.ThreadingActor):
    """Runs one connection: owns the connector and calls it in the actor's thread."""

    def __init__(self, connector: Connector, on_failure: Callable[[str, BaseException], None]
                 | None = None):
        super().__init__()
        self.connector = connector
        self._on_failure_cb = on_failure

    def on_start(self) -> None:
        try:
            self.connector.start()
        except Exception as exc:  # pykka calls no on_failure for this: tell whoever started it
            if self._on_failure_cb is not None:
                self._on_failure_cb(self.connector.name, exc)
            raise

    def on_stop(self) -> None:
        try:
            self.connector.stop()
        except Exception:  # stopping must go on
            log.exception("connection.stop_failed", connection=self.connector.name)

    def on_failure(self, exception_type, exception_value, traceback) -> None:
        log.error("connection.crashed", connection=self.connector.name,
                  error=f"{exception_type.__name__}: {exception_value}")
        if self._on_failure_cb is not None:
            self._on_failure_cb(self.connector.name, exception_value)

    # Everything the core calls goes through here, so a connector needs no actor code.
    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.connector, method)(*args, **kwargs)

    def ping(self) -> str:
        return self.connector.name

    def read_page(self, cursor: str | None, page_size: int, since: str | None = None) -> Page:
        return self.connector.read_page(cursor, page_size, since=since)

    def read_records(self, events: Sequence[Event]) -> list[Record]:
        return self.connector.read_records(list(events))

    def write_profiles(self, profiles: Sequence[Profile], known: Iterable[str]) -> list[WriteResult]:
        return self.connector.write_profiles(list(profiles), set(known))

    def check(self) -> dict[str, Any]:
        return self.connector.check()

    def check_schema(self, needs: SchemaNeeds) -> list[SchemaProblem]:
        """The connector's :attr:`Capability.CHECK_SCHEMA` check (the caller checks that the
        connector declares it)."""
        return list(cast(SchemaChecker, self.connector).check_schema(needs))

    def stats(self) -> dict[str, Any]:
        return self.connector.stats()
