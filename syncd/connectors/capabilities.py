"""What a connector can do: each capability is a set of typed methods (a :class:`Protocol`).

A connector declares its capabilities (``Connector.capabilities``) and implements the
methods of each one's protocol; the loader refuses a plugin whose connector lacks one
(:func:`syncd.connectors.connector.missing_methods`). The core calls these methods only through the
typed proxy of the connection's actor (:class:`syncd.connectors.connection.ConnectionProxy`), never by
a name in a string, and the actor refuses a call whose capability the connector does not
declare (:class:`CapabilityMissing`). The config loader checks that the connections of each
integration have every capability its settings need
(:func:`syncd.config.needs.required`).

Every capability has a section in ``docs/plugins.md`` and a contract test class in
:mod:`syncd.testing` (meta-tests check both).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from syncd.capability import Capability as Capability
from syncd.engagement import EngagementReader, EngagementWriter, TaskCreator
from syncd.exceptions import SyncdError
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


class CapabilityMissing(SyncdError):
    """The core asked a connection for something its connector does not declare."""


#: Parses one webhook delivery: ``(headers, raw_body) -> events``. Raises
#: :class:`syncd.exceptions.WebhookRejected` (401 bad signature, 400 bad body ...).
WebhookParser = Callable[[Mapping[str, str], bytes], list[Event]]


class RecordReader(Protocol):
    """:attr:`Capability.READ_RECORDS`: a source that pages through its records and reads
    back the records webhooks name."""

    def read_page(self, cursor: str | None, page_size: int, since: str | None = None
                  ) -> Page:
        """One page of the records (changed ``since``, ISO-8601, when given); ``cursor`` is
        the previous page's (None: the first page); ``Page.cursor`` None: the last page."""
        ...

    def read_records(self, events: list[Event]) -> list[Record]:
        """The current state of the records the events name. A record that is gone comes
        back ``deleted=True``; one the source could not read whole carries ``error``."""
        ...


class WebhookSource(Protocol):
    """:attr:`Capability.PARSE_WEBHOOKS`: a source that pushes changes as webhooks. The
    parser runs in the receiver's threads, before anything is stored: cheap, thread-safe.
    A connector may also define ``ensure_webhook(url) -> str`` (register the receiver's URL
    with the partner; called at start), and the classmethod ``webhook_handshake(name,
    config)`` returning ``(query, headers) -> (status, body, content_type) | None``: a
    delivery it answers (e.g. Graph's ``validationToken`` handshake) is answered so, never
    parsed nor queued."""

    @classmethod
    def webhook_parser(cls, name: str, config: Mapping[str, Any]) -> WebhookParser:
        ...


class ProfileWriter(Protocol):
    """:attr:`Capability.WRITE_PROFILES`: a destination that creates and updates profiles."""

    def write_profiles(self, profiles: list[Profile], known: set[str]) -> list[WriteResult]:
        """Upsert by ``Profile.key``; ``known``: the keys syncd wrote before. One result per
        profile, in input order; writing the same profile twice is harmless."""
        ...


class ProfileDeleter(Protocol):
    """:attr:`Capability.DELETE_PROFILES`: needed by ``delete_unmatched``."""

    def delete_profiles(self, keys: list[str]) -> list[WriteResult]:
        """One result per key, in input order; deleting a missing profile is "deleted"."""
        ...


class ConsentChangeReader(Protocol):
    """:attr:`Capability.READ_CONSENT_CHANGES`: a destination whose consents people change
    (unsubscribes), read to write them back to the source."""

    def read_consent_changes(self, cursor: str | None
                             ) -> tuple[list[ConsentChange], str | None]:
        """Consents changed since ``cursor`` (opaque; None on the first call: from now
        on), oldest first, and the cursor of the next call."""
        ...


class ConsentWriter(Protocol):
    """:attr:`Capability.WRITE_CONSENTS`: a source that takes opt-outs back."""

    def write_consents(self, record_id: str, labels: dict[str, bool]) -> WriteResult:
        """Set (True) or remove (False) opt-in labels on one record."""
        ...


class GroupReader(Protocol):
    """:attr:`Capability.READ_GROUPS`: a source with named groups (overviews, selections)."""

    def read_group(self, name: str) -> list[str]:
        """The ids of the records in the group, all pages."""
        ...


class BulkWriter(Protocol):
    """:attr:`Capability.BULK_WRITE`: a destination with an import API for large full syncs
    (``bulk_threshold``); without it they take the per-profile path."""

    def bulk_write(self, profiles: list[Profile]) -> list[WriteResult]:
        """Like ``write_profiles``, in one import: one result per profile in input order."""
        ...


class DirectReader(Protocol):
    """:attr:`Capability.READ_RECORD`: a direct read of one record by its key. The core
    deletes a profile (``delete_unmatched``) only after this read confirms the record is
    gone."""

    def read_record(self, record_id: str) -> Record | None:
        """The record; None only when the source answers "not found"."""
        ...


class SchemaChecker(Protocol):
    """:attr:`Capability.CHECK_SCHEMA`: compare the names the config uses with what the
    account has (``syncd check-config --online`` and the daemon's preflight)."""

    def check_schema(self, needs: SchemaNeeds) -> list[SchemaProblem]:
        """The problems; raises only when the account cannot be reached or read."""
        ...


class ProfileReader(Protocol):
    """:attr:`Capability.READ_PROFILES`: a destination whose profiles can be read back by
    key (attributes, consents, tags). Dry runs compare the source with it (``dry_run_read``);
    without it they decide against what syncd knows of the destination."""

    def read_profiles(self, keys: list[str]) -> list[ProfileState]:
        """One state per key, in input order (keys as ``write_profiles`` is given them):
        ``found=False`` when the destination answers "no such profile"; a value the answer
        does not name is left out (unknown), never given as empty; a key that could not be
        read carries ``error``. Reads only: never writes. Paced by the partner's limits."""
        ...


#: The protocol of each capability.
PROTOCOLS: dict[Capability, type] = {
    Capability.READ_RECORDS: RecordReader,
    Capability.PARSE_WEBHOOKS: WebhookSource,
    Capability.WRITE_PROFILES: ProfileWriter,
    Capability.DELETE_PROFILES: ProfileDeleter,
    Capability.READ_CONSENT_CHANGES: ConsentChangeReader,
    Capability.WRITE_CONSENTS: ConsentWriter,
    Capability.READ_GROUPS: GroupReader,
    Capability.BULK_WRITE: BulkWriter,
    Capability.READ_RECORD: DirectReader,
    Capability.CHECK_SCHEMA: SchemaChecker,
    # response data and tasks: the protocols live with their values in syncd.engagement
    Capability.READ_RESPONSES: EngagementReader,
    Capability.WRITE_RESPONSES: EngagementWriter,
    Capability.CREATE_TASKS: TaskCreator,
    Capability.READ_PROFILES: ProfileReader,
}


def methods_of(protocol: type) -> tuple[str, ...]:
    """The methods a protocol requires."""
    return tuple(name for name, value in vars(protocol).items()
                 if not name.startswith("_") and (callable(value)
                                                  or isinstance(value, classmethod)))


#: The methods each capability requires, checked when a plugin is loaded.
REQUIRED_METHODS: dict[Capability, tuple[str, ...]] = {
    cap: methods_of(proto) for cap, proto in PROTOCOLS.items()}
