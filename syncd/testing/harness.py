"""What a connector's tests give the contract kit: a :class:`Harness` over a started connector
and, when it speaks HTTP, the emulator of its partner's API.

A connector's test module subclasses the contract classes of its capabilities and defines
one fixture, ``harness``, returning a subclass of :class:`Harness` that implements the
methods those contracts use (each says which it needs). Methods arrange the partner's data
*through the emulator* (not through the connector under test) and read it back from there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from syncd.connectors.connector import Connector
from syncd.engagement import EngagementEvent
from syncd.records import Profile, SchemaNeeds

if TYPE_CHECKING:
    from syncd.web.emulator import Emulator


class Harness:
    """A started connector and its partner, for the contract tests."""

    #: The connector under test, started (``start()`` called). Typed ``Any``: the contracts
    #: call the methods of whichever capabilities it declares.
    connector: Any
    #: The emulator it talks to, or None for a connector without HTTP (memory).
    emulator: Emulator | None = None
    #: Every secret of the connection (client secrets, webhook secrets, tokens): none may
    #: appear in anything the connector returns, logs or raises.
    secrets: tuple[str, ...] = ()
    #: The page size the paging contract reads with (small: many pages).
    page_size: int = 3

    def __init__(self, connector: Connector, emulator: Emulator | None = None,
                 secrets: tuple[str, ...] = ()):
        self.connector = connector
        self.emulator = emulator
        self.secrets = secrets

    def exercise(self) -> Any:
        """One cheap call that sends at least one request (default: ``check()``)."""
        return self.connector.check()

    # -- sources ---------------------------------------------------------------------------

    def source_ids(self) -> list[str]:
        """Every record id a full read must list (READ_RECORDS)."""
        raise NotImplementedError

    def delete_record(self, record_id: str) -> None:
        """Delete a record in the partner (READ_RECORDS)."""
        raise NotImplementedError

    def missing_id(self) -> str:
        """An id no record has, well-formed for this source (READ_RECORD, WRITE_CONSENTS)."""
        raise NotImplementedError

    def webhook(self, record_id: str) -> tuple[dict[str, str], bytes]:
        """A genuine, signed delivery (headers, raw body) naming ``record_id`` as changed
        (PARSE_WEBHOOKS)."""
        raise NotImplementedError

    def labelled(self) -> tuple[str, str]:
        """A record id and one opt-in label it has (WRITE_CONSENTS)."""
        raise NotImplementedError

    def labels(self, record_id: str) -> set[str]:
        """The labels the partner holds on a record (WRITE_CONSENTS)."""
        raise NotImplementedError

    def group(self) -> tuple[str, list[str]]:
        """A group name the connection can read and the ids of its members (READ_GROUPS)."""
        raise NotImplementedError

    # -- destinations ----------------------------------------------------------------------

    def new_profile(self, key: str) -> Profile:
        """A profile this destination accepts (WRITE_PROFILES, BULK_WRITE ...)."""
        return Profile(key, f"{key}@example.org")

    def profile(self, key: str) -> dict[str, Any] | None:
        """What the partner holds for the profile keyed ``key`` (None: nothing)."""
        raise NotImplementedError

    def subscribed_profile(self, key: str) -> tuple[Profile, str, str]:
        """A profile opted in to a topic, with that topic and channel
        (READ_CONSENT_CHANGES)."""
        raise NotImplementedError

    def unsubscribe(self, key: str, topic: str, channel: str) -> None:
        """A person opts out of ``topic`` in the partner (READ_CONSENT_CHANGES)."""
        raise NotImplementedError

    def readable_profile(self, key: str) -> Profile:
        """Arrange, through the partner, a profile keyed ``key`` holding at least one
        attribute, and return what it holds (READ_PROFILES)."""
        raise NotImplementedError

    def change_in_partner(self, key: str) -> tuple[str, Any]:
        """Change one attribute of the profile keyed ``key`` as a person in the partner
        would; returns the attribute's name and new value (READ_PROFILES)."""
        raise NotImplementedError

    # -- response data and tasks -----------------------------------------------------------

    def engagement_event(self) -> str:
        """An e-mail event of a profile in the partner; returns the profile's key
        (READ_RESPONSES)."""
        raise NotImplementedError

    def engagement_for(self, record_id: str) -> EngagementEvent:
        """An engagement event naming ``record_id`` (WRITE_RESPONSES)."""
        return EngagementEvent("email_opened", record_id, "2026-06-01T10:00:00Z",
                               correlation_id=f"contract-{record_id}",
                               address=f"{record_id}@example.org", campaign="Contract")

    def employee(self) -> str | None:
        """An employee id tasks may be assigned to (CREATE_TASKS)."""
        raise NotImplementedError

    # -- schema ----------------------------------------------------------------------------

    def needs_met(self) -> SchemaNeeds:
        """Needs the account has (CHECK_SCHEMA)."""
        raise NotImplementedError

    def needs_unmet(self) -> tuple[SchemaNeeds, str]:
        """Needs naming something the account lacks, and the config key of the problem
        (CHECK_SCHEMA)."""
        raise NotImplementedError
