"""The sync rules: pure functions over plain records. No actors, no HTTP, no clock.

- :func:`matches` — the sync conditions (``field = value``; all must hold);
- :func:`to_profile` — field, consent and tag mapping of a record to a destination profile;
- :func:`decide` — what to do with one record given what syncd wrote before: write it (new
  or changed), leave it (unchanged), skip it (conditions, deleted) or delete its profile
  (only where the integration enables deleting what stops matching).

Seed 001: contacts that stop matching the conditions are *not* deleted unless the
integration enables it, and changing conditions needs no full sync (the rules are applied
to every record as it comes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from syncd.config.model import Condition, ConsentMapping, IntegrationConfig
from syncd.records import Consent, Profile, Record, Scalar


@dataclass(frozen=True)
class Rules:
    conditions: tuple[Condition, ...] = ()
    #: source field path -> destination attribute (as the destination names it)
    fields: dict[str, str] = field(default_factory=dict)
    consents: tuple[ConsentMapping, ...] = ()
    #: source selection -> destination tag
    selections: dict[str, str] = field(default_factory=dict)
    delete_unmatched: bool = False

    @classmethod
    def from_integration(cls, integration: IntegrationConfig,
                         canonical: Callable[[str], str] = lambda name: name) -> Rules:
        """The rules of an integration, with attribute names as the destination spells them."""
        return cls(
            conditions=tuple(integration.conditions),
            fields={src: canonical(dst) for src, dst in integration.fields.items()},
            consents=tuple(integration.consents),
            selections=dict(integration.selections),
            delete_unmatched=integration.delete_unmatched,
        )


# -- conditions --------------------------------------------------------------------------------


def _norm(value: Scalar) -> str | None:
    """Values compare as text, trimmed and case-folded: ``True`` equals ``"true"``, ``1``
    equals ``"1"`` and ``1.0``, ``"A "`` equals ``"a"``. ``None`` and ``""`` are both empty."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip().casefold()
    return text or None


def matches(conditions: Iterable[Condition], record: Record) -> bool:
    """True when every condition holds for the record (no conditions: every record)."""
    return all(_norm(record.get(c.field)) == _norm(c.value) for c in conditions)


# -- mapping -----------------------------------------------------------------------------------


def to_profile(rules: Rules, record: Record) -> Profile:
    """The profile a destination should hold for ``record``. E-mail and id are mapped
    automatically (the destination connector knows its attribute names for them)."""
    attributes = {dest: record.fields.get(src) for src, dest in rules.fields.items()}
    consents = tuple(
        Consent(topic=m.topic, channel=m.channel, opted_in=m.label in record.labels)
        for m in rules.consents
    )
    tags = {tag: selection in record.selections for selection, tag in rules.selections.items()}
    return Profile(key=record.id, email=record.email, attributes=attributes,
                   consents=consents, tags=tags)


def expected_view(profile: Profile, email_attribute: str | None,
                  id_attribute: str | None) -> dict[str, Scalar]:
    """The attributes a destination holds after writing ``profile``: what the sandbox and
    the tests compare a destination's contents with (cleared attributes are absent)."""
    view: dict[str, Scalar] = {}
    if email_attribute and profile.email:
        view[email_attribute] = profile.email
    if id_attribute:
        view[id_attribute] = profile.key
    for name, value in profile.attributes.items():
        if value is not None and value != "":
            view[name] = value
    return view


# -- decisions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    profile: Profile
    digest: str
    known: bool  # syncd wrote this profile before (it should exist)


@dataclass(frozen=True)
class Unchanged:
    key: str


@dataclass(frozen=True)
class Skip:
    record_id: str
    reason: str


@dataclass(frozen=True)
class Delete:
    key: str
    reason: str


Decision = Write | Unchanged | Skip | Delete


def decide(rules: Rules, record: Record, link: tuple[str, str | None] | None) -> Decision:
    """What to do with ``record``; ``link`` is ``(dest_key, digest)`` of what syncd last
    wrote for it, or None if it never wrote it."""
    if record.deleted:
        # Deleting in the CRM never deletes the profile (seed 000/001 know no such sync);
        # with delete_unmatched a deleted contact no longer matches, so it goes too.
        if link is not None and rules.delete_unmatched:
            return Delete(link[0], "deleted in the source")
        return Skip(record.id, "deleted in the source")
    if not matches(rules.conditions, record):
        if link is not None and rules.delete_unmatched:
            return Delete(link[0], "no longer matches the sync conditions")
        return Skip(record.id, "does not match the sync conditions")
    profile = to_profile(rules, record)
    digest = profile.digest()
    if link is not None and link[1] == digest:
        return Unchanged(record.id)
    return Write(profile, digest, known=link is not None)
