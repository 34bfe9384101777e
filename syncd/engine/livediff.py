"""What a sync would change in the destination, from its profiles read live (dry runs):
pure functions over a record, its link, the opt-outs syncd read and the
:class:`~syncd.records.ProfileState` the destination answered. No actors, no I/O.

- :func:`snapshot` — what of a read matters to the integration (its attributes, consents and
  tags; whether the profile exists): recorded in the plan, compared again when it is applied;
- :func:`live_optouts` — the opt-outs the read shows that syncd did not write (a person's);
- :func:`diff` — the plan entry of one record and the write that carries it out.

Unknown is never empty: an attribute, consent or tag the read does not name is *unknown*. An
unknown attribute is written (``{"new": v, "unknown": true}`` in the plan: the write sets it
whatever it was); an unknown consent or tag is sent only where the source sets it (an opt-in,
a set tag), as a write of a never-written one would. The consent rules are those of a sync
(:func:`syncd.engine.rules.resolve_consents`): an opt-out made in the destination holds until
the source shows a newer opt-in; such a kept opt-out is listed as ``kept``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from syncd.engine import rules as R
from syncd.records import Link, ProfileState, Record, Scalar

KEPT = ("opted out in the destination, and the source's opt-in is not newer: the opt-out "
        "is kept")
OVERRIDDEN = "opted out in the destination, and the source's opt-in is newer: opted in again"


@dataclass(frozen=True)
class Entry:
    """One record's place in a plan: ``action`` ``create`` | ``update`` | ``delete`` (a
    change), ``unchanged`` or ``skipped`` (no change); ``details`` go into the plan (JSON);
    ``write``/``delete`` carry the change out."""

    action: str
    details: dict[str, Any] = field(default_factory=dict)
    write: R.Write | None = None
    delete: R.Delete | None = None


def _text(value: Scalar) -> Scalar:
    return None if value == "" else value


def same(old: Scalar, new: Scalar) -> bool:
    """Whether a value read equals the value to write (``""`` is no value; ``1`` and
    ``"1"`` are alike, as an API may answer numbers as text)."""
    old, new = _text(old), _text(new)
    if old is None or new is None:
        return old is new
    if isinstance(old, bool) or isinstance(new, bool):
        return str(old).lower() == str(new).lower()
    return old == new or str(old) == str(new)


def snapshot(rules: R.Rules, state: ProfileState) -> dict[str, Any]:
    """What of ``state`` the integration's mappings name (JSON), to record in the plan."""
    keys = {f"{m.topic}|{m.channel}" for m in rules.consents}
    tags = set(rules.selections.values())
    return {"found": state.found, "email": state.email,
            "attributes": {k: v for k, v in state.attributes.items()
                           if k in rules.fields.values()},
            "consents": {k: v for k, v in state.consents.items() if k in keys},
            "tags": {k: v for k, v in state.tags.items() if k in tags}}


def moved(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between two snapshots, as ``name: old -> new`` (empty: nothing)."""
    if before.get("found") != now.get("found"):
        return [f"the profile {'is gone' if before.get('found') else 'exists now'}"]
    out = [] if before.get("email") == now.get("email") else [
        f"email: {before.get('email')!r} -> {now.get('email')!r}"]
    for part in ("attributes", "consents", "tags"):
        old, new = before.get(part, {}), now.get(part, {})
        out += [f"{name}: {old.get(name, '?')!r} -> {new.get(name, '?')!r}"
                for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)]
    return out


def live_optouts(rules: R.Rules, link: Link | None, state: ProfileState,
                 at: str) -> dict[tuple[str, str], str]:
    """The mapped consents the read shows opted out that syncd did not opt out itself
    (not in the link's ``"w"``): a person's opt-outs, taken as made at ``at``."""
    ours = set((link.state or {}).get("w", ())) if link is not None else set()
    return {(m.topic, m.channel): at for m in rules.consents
            if state.consents.get(f"{m.topic}|{m.channel}") is False
            and f"{m.topic}|{m.channel}" not in ours}


def diff(rules: R.Rules, record: Record, link: Link | None,
         optouts: dict[tuple[str, str], str] | None, state: ProfileState, at: str) -> Entry:
    """The plan entry of ``record`` against the destination's profile as read (``state``,
    read at ``at``, ISO-8601); ``optouts`` are those syncd read before (with their times)."""
    merged = {**live_optouts(rules, link, state, at), **(optouts or {})}
    decision = R.decide(rules, record, link, merged)
    snap = snapshot(rules, state)
    if isinstance(decision, R.Skip):
        return Entry("skipped")
    if isinstance(decision, R.Delete):
        if not state.found:
            return Entry("unchanged")  # not in the destination: nothing to delete
        return Entry("delete", {"reason": decision.reason, "destination_key": decision.key,
                                "read": snap, "basis": "live"}, delete=decision)
    consents, overridden = R.resolve_consents(rules, record, merged)
    profile = replace(R.to_profile(rules, record), consents=consents)
    digest = profile.digest()
    if not state.found:
        send, new_state, _ = R.delta(profile, None)
        details = {"attributes": profile.attributes, "tags": profile.tags, "read": snap,
                   "consents": {R.consent_key(c): c.opted_in for c in profile.consents},
                   "basis": "live"}
        if link is not None:
            details["note"] = "syncd wrote it before; it is no longer in the destination"
        return Entry("create", details, R.Write(
            send, digest, known=False, state=new_state, optouts_overridden=overridden))
    return _update(rules, record, link, state, profile, digest, overridden, snap)


def _update(rules: R.Rules, record: Record, link: Link | None, state: ProfileState,
            profile: Any, digest: str, overridden: tuple[tuple[str, str], ...],
            snap: dict[str, Any]) -> Entry:
    attributes: dict[str, dict[str, Any]] = {}
    for name, new in profile.attributes.items():
        if name not in state.attributes:
            attributes[name] = {"new": new, "unknown": True}
        elif not same(state.attributes[name], new):
            attributes[name] = {"old": state.attributes[name], "new": new}
    details: dict[str, Any] = {"attributes": attributes}
    if profile.email and state.email is None:
        details["email"] = {"new": profile.email, "unknown": True}
    elif not same(state.email, profile.email):
        details["email"] = {"old": state.email, "new": profile.email}
    consent_changes: dict[str, dict[str, Any]] = {}
    kept: dict[str, str] = {}
    flips, send_c = [], []
    again = {f"{t}|{c}" for t, c in overridden}
    for mapping, consent in zip(rules.consents, profile.consents, strict=True):
        key, old = R.consent_key(consent), state.consents.get(R.consent_key(consent))
        if old is None and consent.opted_in:
            consent_changes[key] = {"new": True, "unknown": True}
            send_c.append(consent)
        elif old is not None and old != consent.opted_in:
            consent_changes[key] = {"old": old, "new": consent.opted_in}
            if key in again:
                consent_changes[key]["why"] = OVERRIDDEN
            flips.append(key)
            send_c.append(consent)
        elif old is False and mapping.label in record.labels:
            kept[key] = KEPT
    tag_changes = {tag: {"old": state.tags.get(tag), "new": on}
                   for tag, on in profile.tags.items()
                   if (tag in state.tags and state.tags[tag] != on)
                   or (tag not in state.tags and on)}
    details.update(flips=flips, consent_changes=consent_changes, tag_changes=tag_changes,
                   read=snap, basis="live")
    if kept:
        details["kept"] = kept
    if not (attributes or "email" in details or consent_changes or tag_changes):
        return Entry("unchanged", details if kept else {})
    new_state: dict[str, Any] = {"c": {R.consent_key(c): c.opted_in for c in profile.consents},
                                 "t": dict(profile.tags)}
    before = tuple((link.state or {}).get("w", ())) if link is not None else ()
    written = R.written_optouts({"w": before}, send_c)
    if written:
        new_state["w"] = written
    send = replace(profile, consents=tuple(send_c),
                   tags={t: profile.tags[t] for t in tag_changes})
    return Entry("update", details, R.Write(
        send, digest, known=link is not None, state=new_state, flipped=tuple(flips),
        optouts_overridden=overridden, written_before=before))
