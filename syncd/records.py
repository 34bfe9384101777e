"""The plain values that travel between connectors, rules and the coordinator.

They are deliberately small, immutable and free of any vendor notion, so that the rules
can be pure functions over them and so that they can cross actor boundaries safely.

A *record* is what a source system (a CRM, an address book) holds about one person: an id
and a flat mapping of dotted field paths to scalar values, e.g.::

    Record(id="8c0...", fields={"FirstName": "Jan", "Contact.EmailAddress": "jan@x.nl",
                                "Contact.Organization.Name": "Acme"},
           labels=frozenset({"Newsletter"}), selections=frozenset({"VIP"}))

A *profile* is what the rules make of a record for a destination: a stable key (the source
id), the e-mail address, the mapped attributes, consents and tags.
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

Scalar = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Record:
    """One person as a source system holds it, flattened to dotted field paths."""

    id: str
    fields: dict[str, Scalar] = field(default_factory=dict)
    #: The address that goes to e-mail-keyed systems; the connector decides which of the
    #: record's addresses it is (Tribe: the contact's business address, else the private one).
    email: str | None = None
    #: Labels on the record (Tribe opt-in labels, Lime consent types that are approved...).
    labels: frozenset[str] = frozenset()
    #: When each label was last set on the record (ISO-8601), where the source says: a
    #: label set after an opt-out in the destination is a newer opt-in.
    label_times: dict[str, str] = field(default_factory=dict)
    #: Named groups the record belongs to (Tribe selections, overviews...).
    selections: frozenset[str] = frozenset()
    #: When the source last changed the record (ISO-8601), if the source says.
    modified_at: str | None = None
    #: True when the source says the record was deleted.
    deleted: bool = False
    #: Why the source could not read this record whole (e.g. its labels came back missing
    #: or malformed). Such a record is never acted on: no write, no consent change, no
    #: delete; it fails, retryable, with this reason. Never read it as "no labels".
    error: str | None = None

    def get(self, path: str, default: Scalar = None) -> Scalar:
        return self.fields.get(path, default)


@dataclass(frozen=True, slots=True)
class Consent:
    """A subscription state for one topic on one channel."""

    topic: str
    channel: str  # "email" or "sms"
    opted_in: bool


@dataclass(frozen=True, slots=True)
class ConsentChange:
    """A consent changed in the destination (e.g. an unsubscribe in APSIS One)."""

    key: str  # the profile key: the source record id
    topic: str
    channel: str  # "email" or "sms"
    opted_in: bool
    at: str  # ISO-8601, when the destination says it happened
    #: True when the destination's event did not name the consent and the connector inferred
    #: it from the profile's current state (e.g. an unsubscribe without a topic, resolved
    #: through the profile's opt-outs): the core drops those syncd itself wrote.
    inferred: bool = False


@dataclass(frozen=True, slots=True)
class Profile:
    """What a destination should hold for one record after the rules ran."""

    key: str  # the source record id: stable when the e-mail address changes
    email: str | None
    attributes: dict[str, Scalar] = field(default_factory=dict)
    consents: tuple[Consent, ...] = ()
    tags: dict[str, bool] = field(default_factory=dict)

    def digest(self) -> str:
        """A stable fingerprint, used to tell an unchanged profile from a changed one."""
        payload = {
            "k": self.key,
            "e": self.email,
            "a": sorted(self.attributes.items()),
            "c": sorted((c.topic, c.channel, c.opted_in) for c in self.consents),
            "t": sorted(self.tags.items()),
        }
        raw = json.dumps(payload, separators=(",", ":"), default=str).encode()
        return hashlib.blake2b(raw, digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a paged read. ``cursor`` is opaque; ``None`` means there is no next page."""

    records: tuple[Record, ...]
    cursor: str | None
    #: The total number of records, when the source can tell (for progress bars).
    total: int | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """A real-time change as parsed from a webhook: what changed, not its content."""

    record_id: str
    kind: str = "changed"  # "created" | "changed" | "deleted" | a connector-specific word
    entity: str | None = None  # the source's entity type, when it says
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Link:
    """What syncd last wrote for a source record in a destination."""

    dest_key: str
    digest: str | None
    #: The consents and tags last written: ``{"c": {"topic|channel": bool}, "t": {tag: bool}}``,
    #: ``"w"``: the consent keys whose last consent syncd *sent* is an opt-out, and ``"f"``:
    #: the consents and tags sent whose answer is not yet seen (:mod:`syncd.engine.inflight`).
    state: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WriteResult:
    """The outcome of writing one profile."""

    key: str
    outcome: str  # "created" | "updated" | "unchanged" | "deleted" | "failed"
    reason: str | None = None
    #: True when a failure may succeed later (5xx, timeouts, exhausted retries).
    retryable: bool = False
    #: What the destination calls the profile, if different from the key.
    remote_id: str | None = None
    #: For a failure the partner answered: its HTTP status, the request as a path template
    #: (``PATCH /profiles/{key}``: no key, no secret), the partner's own message (problem
    #: title/detail) and, when the connector knows, the likely fix. The core stops a run
    #: whose first writes all fail alike (:mod:`syncd.engine.failfast`).
    status: int | None = None
    endpoint: str | None = None
    detail: str | None = None
    fix: str | None = None



@dataclass(frozen=True, slots=True)
class ProfileState:
    """What a destination holds for one profile, read live by its key (READ_PROFILES).

    Only what the answer says is known: an attribute, consent or tag *absent* from these
    mappings is **unknown**, never empty (a cleared attribute the destination names with an
    empty value is ``None`` or ``""`` here; one it does not name is missing)."""

    key: str  # the profile key (the source record id), as write_profiles is given it
    #: False: the destination answered "no such profile" (a write would create it).
    found: bool
    #: Attribute name (as the destination spells it, e.g. a discriminator) -> value.
    attributes: dict[str, Scalar] = field(default_factory=dict)
    #: The e-mail address the profile holds (None: unknown).
    email: str | None = None
    #: ``"topic|channel"`` -> opted in (channel ``"email"`` or ``"sms"``).
    consents: dict[str, bool] = field(default_factory=dict)
    #: Tag -> set.
    tags: dict[str, bool] = field(default_factory=dict)
    #: Why the profile could not be read (then nothing of it is known, ``found`` included).
    error: str | None = None

# -- preflight: what an integration needs from a connection, and what the account lacks --------


class NeedKind(enum.StrEnum):
    """What a config names in a connection's account."""

    FIELD = "field"  # a source field path (conditions, field mappings)
    LABEL = "label"  # a source label (consent mappings, selections)
    GROUP = "group"  # a source overview or selection read by name (overviews)
    ATTRIBUTE = "attribute"  # a destination attribute (field mappings), canonical name
    TOPIC = "topic"  # a destination consent topic
    CHANNEL = "channel"  # a consent channel: "email" or "sms"
    TAG = "tag"  # a destination tag (selections, overviews)
    RESPONSES = "responses"  # the source records response data (response_events)
    TASKS = "tasks"  # the source takes tasks from automation (name: the assignee rule)


@dataclass(frozen=True, slots=True)
class Need:
    """One name the config uses in a connection's account, and the config key that says so
    (e.g. ``integrations.crm-apsis.fields."Contact.Organization.Name"``)."""

    kind: NeedKind
    name: str
    key: str


@dataclass(frozen=True, slots=True)
class SchemaNeeds:
    """Everything the enabled integrations need from one connection, in the role they use
    it in. Connection options (entity sets, sections ...) the connector knows itself."""

    role: str  # "source" | "destination" | "both"
    items: tuple[Need, ...] = ()

    def of(self, kind: NeedKind) -> tuple[Need, ...]:
        return tuple(n for n in self.items if n.kind is kind)

    def union(self, other: SchemaNeeds) -> SchemaNeeds:
        """What either needs (while a reload moves from one config to the next)."""
        roles = {r for n in (self, other) for r in (
            ("source", "destination") if n.role == "both" else (n.role,)) if r != "none"}
        role = "both" if len(roles) == 2 else next(iter(roles), "none")
        return SchemaNeeds(role=role, items=tuple(dict.fromkeys(self.items + other.items)))

    @property
    def as_source(self) -> bool:
        return self.role in ("source", "both")

    @property
    def as_destination(self) -> bool:
        return self.role in ("destination", "both")


@dataclass(frozen=True, slots=True)
class SchemaProblem:
    """A name the config uses that the account does not have.

    ``key`` is the config key to change; ``have`` what the account has instead (a short
    list); ``suggestion`` the closest of those ("did you mean"), as the value to write.
    ``severity`` "warning" is shown but does not fail a check (e.g. a tag APSIS may create on
    first use)."""

    key: str
    message: str
    have: tuple[str, ...] = ()
    suggestion: str | None = None
    fix: str | None = None
    severity: str = "error"  # "error" | "warning"

    def __str__(self) -> str:
        text = f"{self.key}: {self.message}"
        if self.have:
            shown = ", ".join(self.have[:MAX_HAVE])
            more = f" (and {len(self.have) - MAX_HAVE} more)" if len(self.have) > MAX_HAVE \
                else ""
            text += f"; the account has: {shown}{more}"
        fixes = []
        if self.suggestion is not None:
            fixes.append(f"did you mean {json.dumps(self.suggestion, ensure_ascii=False)}?")
        if self.fix:
            fixes.append(self.fix)
        if fixes:
            text += f" (fix: {' '.join(fixes)})"
        return text


#: How many names of what an account has a problem lists.
MAX_HAVE = 12
