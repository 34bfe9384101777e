"""Consents and tags in flight: sent to the destination, their answer not yet seen.

A write may be applied by the destination although its answer never comes back (a 5xx after
applying it, a dropped connection, a hang past the timeout, a kill of the process). Until the
answer is seen, syncd cannot tell whether the destination holds what the write sent or what
it held before. So, before each write, its link records the state the write leaves when
applied (``"c"``, ``"t"``) with the consents and tags it sends marked in flight (``"f"``:
``{"c": [topic|channel, ...], "t": [tag, ...]}``); the state the answer confirms replaces it.

What is in flight is sent again at the next evaluation whatever it is
(:func:`syncd.engine.rules.delta`): a source going back to the value before the lost write
is sent, not taken as "unchanged". For the stop-and-confirm guard a consent in flight is
compared with the value sent: sending it again is no second flip (the guard counted it when
it was first sent), sending the other value is one.

Pure functions over the link's state; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from syncd.engine.rules import Write


def in_flight_keys(state: dict | None) -> tuple[frozenset[str], frozenset[str]]:
    """The consent keys (``topic|channel``) and tags in flight in a link's ``state``."""
    flight = (state or {}).get("f") or {}
    return frozenset(flight.get("c", ())), frozenset(flight.get("t", ()))


def with_in_flight(state: dict, consents: Iterable[str] = (), tags: Iterable[str] = ()
                   ) -> dict:
    """``state`` with exactly these consent keys and tags in flight (none: no ``"f"``)."""
    out = {k: v for k, v in state.items() if k != "f"}
    flight = {kind: sorted(set(keys)) for kind, keys in (("c", consents), ("t", tags))}
    flight = {kind: keys for kind, keys in flight.items() if keys}
    if flight:
        out["f"] = flight
    return out


def before_answer(write: Write) -> dict:
    """The state to record for ``write``'s link before it is sent: the consents and tags
    the destination holds once it applied the write, with those the write sends (and those
    still in flight from before) marked in flight, and as opt-outs syncd wrote (``"w"``)
    both those it wrote before and those it sends now: an opt-out the destination reports
    meanwhile may be either, and neither is a person's."""
    consents, tags = in_flight_keys(write.state)
    state = with_in_flight(
        write.state, consents | {f"{c.topic}|{c.channel}" for c in write.profile.consents},
        tags | set(write.profile.tags))
    written = set(write.written_before) | set(write.state.get("w", ()))
    if written:
        state["w"] = sorted(written)
    return state
