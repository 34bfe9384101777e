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

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from syncd.config.model import Condition, ConsentMapping, IntegrationConfig
from syncd.engine.inflight import in_flight_keys, with_in_flight
from syncd.engine.newest import newer
from syncd.records import Consent, ConsentChange, Link, Profile, Record, Scalar


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


# -- consents: opt-outs made in the destination, and what to send -----------------------------


def _after(a: str | None, b: str | None) -> bool:
    """True when ISO time ``a`` is strictly later than ``b``: unknown or unreadable times
    are never later (an opt-out is never overridden on a guess); one without an offset is
    UTC (:func:`syncd.engine.newest.newer`)."""
    return newer(a, b)


def resolve_consents(rules: Rules, record: Record,
                     optouts: dict[tuple[str, str], str] | None
                     ) -> tuple[tuple[Consent, ...], tuple[tuple[str, str], ...]]:
    """The consents a profile should have, and the opt-outs a newer CRM opt-in overrides.

    A label present gives an opt-in, a label absent an opt-out, except that an opt-out made
    in the destination holds until the source shows a *newer* opt-in (the label set after
    the opt-out): a full sync never opts a profile back in on old data."""
    optouts = optouts or {}
    consents, overridden = [], []
    for m in rules.consents:
        wanted = m.label in record.labels
        opted_out_at = optouts.get((m.topic, m.channel))
        if wanted and opted_out_at is not None:
            if _after(record.label_times.get(m.label), opted_out_at):
                overridden.append((m.topic, m.channel))
            else:
                wanted = False
        consents.append(Consent(topic=m.topic, channel=m.channel, opted_in=wanted))
    return tuple(consents), tuple(overridden)


def consent_key(consent: Consent) -> str:
    return f"{consent.topic}|{consent.channel}"


def written_optouts(state: dict | None, sent: Iterable[Consent] = ()) -> list[str]:
    """The consent keys (``topic|channel``) whose last consent *sent* by syncd is an opt-out,
    after sending ``sent``: kept in a link's state as ``"w"``, so that an opt-out syncd wrote
    is never taken for one a person made in the destination."""
    written = set((state or {}).get("w", ()))
    for c in sent:
        (written.discard if c.opted_in else written.add)(consent_key(c))
    return sorted(written)


def split_inferred(changes: Iterable[ConsentChange], links: dict[str, Link]
                   ) -> tuple[list[ConsentChange], list[ConsentChange]]:
    """``(kept, unresolved)``: a change the connector inferred from the profile's current
    opt-outs (an unsubscribe that named no topic) is kept only when that opt-out is not one
    syncd wrote; the others stay unresolved (a person's unsubscribe cannot be told apart
    from syncd's own opt-out, and must not make syncd's opt-out permanent in the source)."""
    kept: list[ConsentChange] = []
    unresolved: list[ConsentChange] = []
    for change in changes:
        link = links.get(change.key)
        ours = link is not None and f"{change.topic}|{change.channel}" in \
            (link.state or {}).get("w", ())
        (unresolved if change.inferred and ours else kept).append(change)
    return kept, unresolved


def delta(profile: Profile, state: dict | None) -> tuple[Profile, dict, tuple[str, ...]]:
    """What to send of ``profile`` given the ``state`` last written (None: never written).

    Attributes go in full; consents and tags only where they differ from what was last
    written (a new profile gets its opt-ins and set tags; an opt-out or a cleared tag is sent
    only where an opt-in or a set tag was written before; a consent whose state is unknown,
    ``None``, and a consent or tag in flight, ``"f"``, are sent either way). Returns the
    profile to send, the new state, and the keys of the consents that flip on a profile
    written before (for the stop-and-confirm guard): those that differ from the value last
    *sent* (in flight or answered; an unknown one counts as the opt-out read)."""
    before_c = (state or {}).get("c", {})
    before_t = (state or {}).get("t", {})
    flight_c, flight_t = in_flight_keys(state)
    send_c, flips = [], []
    for c in profile.consents:
        key = consent_key(c)
        previous = before_c.get(key)
        if key not in before_c and key not in flight_c:  # never written: an opt-out
            if c.opted_in:  # would only add noise
                send_c.append(c)
        elif previous is None or key in flight_c:  # unknown: send either way
            send_c.append(c)
            if c.opted_in != bool(previous):  # over what the destination may hold: a flip
                flips.append(key)
        elif previous != c.opted_in:
            send_c.append(c)
            flips.append(key)
    send_t = {tag: on for tag, on in profile.tags.items()
              if tag in flight_t or before_t.get(tag, False) != on}
    new_state: dict[str, object] = {
        "c": {consent_key(c): c.opted_in for c in profile.consents}, "t": dict(profile.tags)}
    written = written_optouts({"w": (state or {}).get("w", ())}, send_c)
    if written:
        new_state["w"] = written
    return replace(profile, consents=tuple(send_c), tags=send_t), new_state, tuple(flips)


# -- decisions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    #: What to send: attributes in full, consents and tags that changed.
    profile: Profile
    #: None: the next evaluation of the record writes it again (consents were held).
    digest: str | None
    known: bool  # syncd wrote this profile before (it should exist)
    #: The consents and tags the destination holds once written.
    state: dict = field(default_factory=dict)
    #: Keys (``topic|channel``) of the consents that flip on a profile written before.
    flipped: tuple[str, ...] = ()
    #: Destination opt-outs that a newer opt-in in the source overrides.
    optouts_overridden: tuple[tuple[str, str], ...] = ()
    #: The opt-outs syncd had written before this write (the link's ``"w"``).
    written_before: tuple[str, ...] = ()
    #: The consent keys in flight before this write (:mod:`syncd.engine.inflight`).
    unsure: tuple[str, ...] = ()

    @property
    def consent_flips(self) -> int:
        """How many consents flip (for the stop-and-confirm guard)."""
        return len(self.flipped)


@dataclass(frozen=True)
class Unchanged:
    key: str


@dataclass(frozen=True)
class Skip:
    record_id: str
    reason: str


@dataclass(frozen=True)
class Delete:
    key: str  # the destination's key of the profile
    reason: str
    #: The source record (to read it directly before deleting, and to hold it).
    record_id: str = ""


Decision = Write | Unchanged | Skip | Delete

DELETED = "deleted in the source"
UNMATCHED = "no longer matches the sync conditions"


def decide(rules: Rules, record: Record, link: Link | None,
           optouts: dict[tuple[str, str], str] | None = None) -> Decision:
    """What to do with ``record``; ``link`` is what syncd last wrote for it (None if it never
    wrote it), ``optouts`` the opt-outs made in the destination for its profile."""
    if record.deleted:
        # Deleting in the CRM never deletes the profile (seed 000/001 know no such sync);
        # with delete_unmatched a deleted contact no longer matches, so it goes too.
        if link is not None and rules.delete_unmatched:
            return Delete(link.dest_key, DELETED, record.id)
        return Skip(record.id, "deleted in the source")
    if not matches(rules.conditions, record):
        if link is not None and rules.delete_unmatched:
            return Delete(link.dest_key, UNMATCHED, record.id)
        return Skip(record.id, "does not match the sync conditions")
    consents, overridden = resolve_consents(rules, record, optouts)
    profile = replace(to_profile(rules, record), consents=consents)
    digest = profile.digest()
    if link is not None and link.digest == digest:
        return Unchanged(record.id)
    send, state, flips = delta(profile, link.state if link is not None else None)
    return Write(send, digest, known=link is not None, state=state, flipped=flips,
                 optouts_overridden=overridden,
                 written_before=tuple((link.state or {}).get("w", ())) if link else (),
                 unsure=tuple(sorted(in_flight_keys(link.state)[0])) if link else ())


def delete_confirmed(rules: Rules, delete: Delete, direct: Record | None) -> bool:
    """Whether ``delete`` stands after a direct read of its record in the source: the
    source answered "not found" (``direct`` is None, or a deleted record), or the record
    read directly no longer meets the conditions. A record merely missing from a list
    answer, or one that matches after all, is never deleted."""
    if not rules.delete_unmatched:
        return False
    if direct is None or direct.deleted:
        return True
    if direct.error:  # read, but not whole: no delete on a partial read
        return False
    return not matches(rules.conditions, direct)


# -- the stop-and-confirm guard ------------------------------------------------------------------

#: The guard never stops fewer sensitive changes than this, whatever the share (a small
#: integration would otherwise need a confirm for every second unsubscribe).
GUARD_MINIMUM = 10


def guard_limit(share: float, profiles: int) -> int | None:
    """How many consent flips and deletes an integration may make in one window without a
    person's confirm: ``confirm_share`` of the ``profiles`` syncd keeps for it, at least
    :data:`GUARD_MINIMUM`. ``None`` (no limit) when the share is 1 or more."""
    if share >= 1:
        return None
    return max(GUARD_MINIMUM, math.floor(share * max(0, profiles) + 1e-9))


def guard_allowance(counted: int, wanted: int, limit: int | None, held: bool) -> int:
    """How many of ``wanted`` more sensitive changes may go now, with ``counted`` made in
    the window; the rest are held (and the integration with them) until a confirm."""
    if held:
        return 0
    if limit is None:
        return wanted
    return max(0, min(wanted, limit - counted))


def hold_consents(write: Write) -> Write:
    """``write`` without its consent flips: attributes and tags still go; the flipped
    consents keep the state last written (still in flight where they were), and the record
    is written again at its next evaluation (digest None), so the flips are derived again
    after a confirm."""
    flipped = set(write.flipped)
    if not flipped:
        return write
    kept = tuple(c for c in write.profile.consents if consent_key(c) not in flipped)
    state_c = dict(write.state.get("c", {}))
    for c in write.profile.consents:
        if consent_key(c) in flipped:
            state_c[consent_key(c)] = not c.opted_in
    state = with_in_flight({**write.state, "c": state_c}, flipped & set(write.unsure))
    state.pop("w", None)
    written = written_optouts({"w": write.written_before}, kept)  # what is really sent
    if written:
        state["w"] = written
    return replace(write, profile=replace(write.profile, consents=kept), digest=None,
                   state=state, flipped=(), optouts_overridden=())


# -- retries of real-time events ----------------------------------------------------------------

#: The longest wait between two attempts of a real-time event.
RETRY_MAX_DELAY = 300.0


def gives_up(attempts: int, max_attempts: int, retryable: bool) -> bool:
    """Whether an event failing now (after ``attempts`` earlier attempts) becomes a dead
    letter: its failure is one retrying cannot fix, or this was its last allowed attempt."""
    return not retryable or attempts + 1 >= max_attempts


def retry_delay(attempts: int, cap: float = RETRY_MAX_DELAY) -> float:
    """Seconds before the next attempt of an event that failed after ``attempts`` earlier
    attempts: 1 s, then doubling, never more than ``cap``."""
    return min(cap, 2.0 ** min(attempts, 64))


# -- consents changed in the destination ----------------------------------------------------------


def consents_unknown(links: dict[str, Link], changed: Iterable[tuple[str, str, str]]
                     ) -> dict[str, Link]:
    """The links of the records whose consents ``(key, topic, channel)`` changed in the
    destination behind syncd's back: those consents become unknown (None) and the digest is
    dropped, so that the next evaluation sends them whatever they are. Records without a link
    are left out; the given links are not changed."""
    out: dict[str, Link] = {}
    for key, topic, channel in changed:
        link = out.get(key) or links.get(key)
        if link is None:
            continue
        state = {**link.state, "c": dict(link.state.get("c", {})),
                 "t": dict(link.state.get("t", {}))}
        state["c"][f"{topic}|{channel}"] = None
        out[key] = Link(link.dest_key, None, state)
    return out
