"""The actor that runs one connection, and its typed proxy (the Mopidy triplet: the plain
API is :class:`syncd.connectors.connector.Connector` with the protocols of :mod:`syncd.connectors.capabilities`,
the actor is :class:`ConnectionActor`, the typed proxy is :class:`ConnectionProxy`).

The actor owns the connector instance, so the connector's HTTP session, auth and budgets
are used from one thread; a connector that declares
:attr:`~syncd.connectors.connector.Connector.two_lanes` is served by two actors instead, a
bulk and a real-time lane on the same instance (:mod:`syncd.connectors.lanes`: the first
starts and stops the connector, the second only calls it). The core calls it only through :class:`ConnectionProxy`, whose
methods are typed with :func:`pykka.typing.proxy_method`: every call names a method, none
a string. A call of a capability the connector does not declare fails with
:class:`~syncd.connectors.capabilities.CapabilityMissing` in the future, naming the connection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import wraps
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

import pykka
import structlog
from pykka.typing import ActorMemberMixin, proxy_method

from syncd.connectors import calls
from syncd.connectors.capabilities import (
    BulkWriter,
    Capability,
    CapabilityMissing,
    ConsentChangeReader,
    ConsentWriter,
    DirectReader,
    GroupReader,
    ProfileDeleter,
    ProfileReader,
    ProfileWriter,
    RecordReader,
    SchemaChecker,
)
from syncd.connectors.connector import Connector
from syncd.connectors.lanes import BULK, Lane, LaneState, running_in
from syncd.engagement import (
    EngagementBatch,
    EngagementEvent,
    EngagementReader,
    EngagementWriter,
    TaskCreator,
    TaskRequest,
    TaskResult,
)
from syncd.records import (
    ConsentChange,
    Event,
    Page,
    Profile,
    ProfileState,
    Record,
    SchemaNeeds,
    SchemaProblem,
    WriteResult,
)

log = structlog.get_logger("syncd.connectors.connector")
P = ParamSpec("P")
R = TypeVar("R")


def _in_lane(method: Callable[Concatenate[ConnectionActor, P], R]
             ) -> Callable[Concatenate[ConnectionActor, P], R]:
    """A call the lane's state shows while it runs (``syncd status``), run in the lane (the
    connector's :func:`syncd.connectors.lanes.current`)."""
    @wraps(method)
    def run(self: ConnectionActor, *args: P.args, **kwargs: P.kwargs) -> R:
        with running_in(self.lane), self.state.running(method.__name__):
            return method(self, *args, **kwargs)

    return run


def _recorded(method: Callable[Concatenate[ConnectionActor, P], R]
              ) -> Callable[Concatenate[ConnectionActor, P], R]:
    """A capability made for records: the HTTP calls its connector marks for them are kept
    for the journal (:mod:`syncd.connectors.calls`)."""
    @wraps(method)
    def run(self: ConnectionActor, *args: P.args, **kwargs: P.kwargs) -> R:
        with calls.recording(self.actor_urn):
            return method(self, *args, **kwargs)

    return run


class ConnectionActor(pykka.ThreadingActor):
    """Runs one connection: owns the connector and calls it in the actor's thread."""

    def __init__(self, connector: Connector, on_failure: Callable[[str, BaseException], None]
                 | None = None, *, lane: Lane = BULK, owner: bool = True,
                 state: LaneState | None = None):
        super().__init__()
        self.connector = connector
        self._on_failure_cb = on_failure
        #: Which lane this actor is (:mod:`syncd.connectors.lanes`).
        self.lane: Lane = lane
        #: Whether it starts and stops the connector (a second lane only calls it).
        self.owner = owner
        #: What it is doing, readable without asking it.
        self.state = state or LaneState(lane)

    def on_start(self) -> None:
        if not self.owner:
            return
        try:
            self.connector.start()
        except Exception as exc:  # pykka calls no on_failure for this: tell whoever started it
            if self._on_failure_cb is not None:
                self._on_failure_cb(self.connector.name, exc)
            raise

    def on_stop(self) -> None:
        calls.forget(self.actor_urn)
        if not self.owner:
            return
        try:
            self.connector.stop()
        except Exception:  # stopping must go on
            log.exception("connection.stop_failed", connection=self.connector.name)

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        log.error("connection.crashed", connection=self.connector.name, lane=self.lane,
                  error=f"{exception_type.__name__}: {exception_value}")
        if self._on_failure_cb is not None:
            self._on_failure_cb(self.connector.name, exception_value)

    def _require(self, capability: Capability) -> Connector:
        """The connector, which must declare ``capability``."""
        if capability not in self.connector.capabilities:
            raise CapabilityMissing(
                f"connection {self.connector.name} (kind {self.connector.kind}) lacks the "
                f"capability {capability.value}")
        return self.connector

    # -- every connector ----------------------------------------------------------------------

    def ping(self) -> str:
        return self.connector.name

    @_in_lane
    def check(self) -> dict[str, Any]:
        return self.connector.check()

    def stats(self) -> dict[str, Any]:
        return self.connector.stats()

    def set_needs(self, needs: SchemaNeeds) -> None:
        self.connector.set_needs(needs)

    def peer_events(self, connection: str, events: Sequence[Event]) -> None:
        """A followed connection's webhook events (:meth:`Connector.follows`)."""
        self.connector.peer_events(connection, events)

    # -- capabilities: each checks the declaration, then calls the protocol's method ---------

    @_in_lane
    def read_page(self, cursor: str | None, page_size: int, since: str | None = None) -> Page:
        reader = cast(RecordReader, self._require(Capability.READ_RECORDS))
        return reader.read_page(cursor, page_size, since=since)

    @_in_lane
    @_recorded
    def read_records(self, events: Sequence[Event]) -> list[Record]:
        reader = cast(RecordReader, self._require(Capability.READ_RECORDS))
        return reader.read_records(list(events))

    @_in_lane
    def ensure_webhook(self, url: str) -> str | None:
        """Register the receiver's URL with the partner (:meth:`Connector.ensure_webhook`)."""
        return self._require(Capability.PARSE_WEBHOOKS).ensure_webhook(url)

    @_in_lane
    @_recorded
    def write_profiles(self, profiles: Sequence[Profile], known: Iterable[str]
                       ) -> list[WriteResult]:
        writer = cast(ProfileWriter, self._require(Capability.WRITE_PROFILES))
        return writer.write_profiles(list(profiles), set(known))

    @_in_lane
    @_recorded
    def delete_profiles(self, keys: Sequence[str]) -> list[WriteResult]:
        deleter = cast(ProfileDeleter, self._require(Capability.DELETE_PROFILES))
        return deleter.delete_profiles(list(keys))

    @_in_lane
    def read_profiles(self, keys: Sequence[str]) -> list[ProfileState]:
        reader = cast(ProfileReader, self._require(Capability.READ_PROFILES))
        return list(reader.read_profiles(list(keys)))

    @_in_lane
    def read_consent_changes(self, cursor: str | None
                             ) -> tuple[list[ConsentChange], str | None]:
        reader = cast(ConsentChangeReader, self._require(Capability.READ_CONSENT_CHANGES))
        changes, nxt = reader.read_consent_changes(cursor)
        return list(changes), nxt

    @_in_lane
    @_recorded
    def write_consents(self, record_id: str, labels: dict[str, bool]) -> WriteResult:
        writer = cast(ConsentWriter, self._require(Capability.WRITE_CONSENTS))
        return writer.write_consents(record_id, labels)

    @_in_lane
    def read_group(self, name: str) -> list[str]:
        return list(cast(GroupReader, self._require(Capability.READ_GROUPS)).read_group(name))

    @_in_lane
    @_recorded
    def bulk_write(self, profiles: Sequence[Profile]) -> list[WriteResult]:
        writer = cast(BulkWriter, self._require(Capability.BULK_WRITE))
        return writer.bulk_write(list(profiles))

    @_in_lane
    @_recorded
    def read_record(self, record_id: str) -> Record | None:
        return cast(DirectReader, self._require(Capability.READ_RECORD)).read_record(record_id)

    @_in_lane
    def check_schema(self, needs: SchemaNeeds) -> list[SchemaProblem]:
        checker = cast(SchemaChecker, self._require(Capability.CHECK_SCHEMA))
        return list(checker.check_schema(needs))

    @_in_lane
    def read_engagement(self, cursor: str | None) -> EngagementBatch:
        reader = cast(EngagementReader, self._require(Capability.READ_RESPONSES))
        return reader.read_engagement(cursor)

    @_in_lane
    def write_engagement(self, events: Sequence[EngagementEvent], uncertain: frozenset[str]
                         ) -> list[WriteResult]:
        writer = cast(EngagementWriter, self._require(Capability.WRITE_RESPONSES))
        return list(writer.write_engagement(list(events), frozenset(uncertain)))

    @_in_lane
    def create_task(self, task: TaskRequest) -> TaskResult:
        return cast(TaskCreator, self._require(Capability.CREATE_TASKS)).create_task(task)


class ConnectionProxy(ActorMemberMixin, pykka.ActorProxy[ConnectionActor]):
    """The typed proxy of a :class:`ConnectionActor`: each method returns a future."""

    ping = proxy_method(ConnectionActor.ping)
    check = proxy_method(ConnectionActor.check)
    stats = proxy_method(ConnectionActor.stats)
    set_needs = proxy_method(ConnectionActor.set_needs)
    peer_events = proxy_method(ConnectionActor.peer_events)
    read_page = proxy_method(ConnectionActor.read_page)
    read_records = proxy_method(ConnectionActor.read_records)
    ensure_webhook = proxy_method(ConnectionActor.ensure_webhook)
    write_profiles = proxy_method(ConnectionActor.write_profiles)
    delete_profiles = proxy_method(ConnectionActor.delete_profiles)
    read_profiles = proxy_method(ConnectionActor.read_profiles)
    read_consent_changes = proxy_method(ConnectionActor.read_consent_changes)
    write_consents = proxy_method(ConnectionActor.write_consents)
    read_group = proxy_method(ConnectionActor.read_group)
    bulk_write = proxy_method(ConnectionActor.bulk_write)
    read_record = proxy_method(ConnectionActor.read_record)
    check_schema = proxy_method(ConnectionActor.check_schema)
    read_engagement = proxy_method(ConnectionActor.read_engagement)
    write_engagement = proxy_method(ConnectionActor.write_engagement)
    create_task = proxy_method(ConnectionActor.create_task)


def typed_proxy(ref: pykka.ActorRef[ConnectionActor]) -> ConnectionProxy:
    """The typed proxy of a connection actor."""
    return cast(ConnectionProxy, ref.proxy())
