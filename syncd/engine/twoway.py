"""The two-way decision: a pure function from both sides and what syncd last saw of them to
the writes each side needs (vdirsyncer's model, per field).

The one-way rules (:mod:`syncd.engine.rules`) turn a source record into what a destination should
hold. A two-way link keeps, per pair of items and per field, the *status*: the value both
sides agreed on after syncd's last write or read. Comparing each side with the status tells
who changed what since:

========================  ==========================================  ====================
left vs status            right vs status                             action
========================  ==========================================  ====================
equal                     equal                                       none
changed                   equal                                       left's value → right
equal                     changed                                     right's value → left
changed                   changed, to the same value                  none (status moves)
changed                   changed, to different values                conflict: newest wins
========================  ==========================================  ====================

- **No echoes**: after syncd writes a value to one side, the status holds that value, so
  the change notification of syncd's own write compares equal and causes nothing (not a
  flag: a later real edit to the same value is also nothing, which is right).
- **Conflicts** (both sides changed one field differently between two syncs) are resolved
  newest-wins by the sides' modification times (a tie or a missing time: the left side, the
  system of record); each is returned as a :class:`Conflict` naming the loser, to be logged.
- A field a side may not be written (``left_fields`` / ``right_fields``) is never written
  there; a change on the side that cannot pass it on stays unsynced until the other side
  changes the field.
- ``None`` and ``""`` are the same value ("empty").
- A field a side's mapping does not hold (the answer did not name it) is **unknown**, never
  empty: nothing is written for it either way and its status is kept, so an odd read (an
  answer with fields missing) never empties the other side.
- :func:`over_share`: the guard of a two-way round, which holds a round that would change
  more than a share of one side's items at once (an odd read with explicit empty values).

Which pairs exist, creating one on the other side, and never deleting are the caller's
(e.g. :mod:`syncd_ms365.link`); this module only compares values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from syncd.engine.rules import guard_limit


def _norm(value: Any) -> Any:
    return None if value == "" else value


@dataclass(frozen=True)
class Conflict:
    field: str
    left: Any
    right: Any
    winner: str  # "left" | "right"

    @property
    def loser_value(self) -> Any:
        return self.right if self.winner == "left" else self.left


@dataclass(frozen=True)
class Decision:
    to_left: dict[str, Any] = field(default_factory=dict)
    to_right: dict[str, Any] = field(default_factory=dict)
    #: The status to keep once the writes are done.
    status: dict[str, Any] = field(default_factory=dict)
    conflicts: tuple[Conflict, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.to_left and not self.to_right


def decide(left: Mapping[str, Any], right: Mapping[str, Any], status: Mapping[str, Any],
           fields: Iterable[str], *, left_fields: Iterable[str] | None = None,
           right_fields: Iterable[str] | None = None, left_time: str | None = None,
           right_time: str | None = None) -> Decision:
    """Compare ``left`` and ``right`` (field → value) with ``status`` (field → the value
    both sides last agreed on; a field missing from it has never been synced)."""
    may_left = set(fields if left_fields is None else left_fields)
    may_right = set(fields if right_fields is None else right_fields)
    right_newer = bool(left_time and right_time and right_time > left_time)
    to_left: dict[str, Any] = {}
    to_right: dict[str, Any] = {}
    new_status: dict[str, Any] = {}
    conflicts: list[Conflict] = []
    for name in fields:
        known = name in status
        s = _norm(status.get(name))
        if name not in left or name not in right:  # unknown on a side: nothing to compare
            if known:
                new_status[name] = s
            continue
        a, b = _norm(left[name]), _norm(right[name])
        if a == b:
            new_status[name] = a
            continue
        left_changed = not known or a != s
        right_changed = known and b != s
        if left_changed and right_changed:
            winner = "right" if right_newer and name in may_left else "left"
            if winner == "left" and name not in may_right:
                winner = "right" if name in may_left else ""
            if winner:
                conflicts.append(Conflict(name, a, b, winner))
            left_changed, right_changed = winner == "left", winner == "right"
        if left_changed and name in may_right:
            to_right[name] = a
            new_status[name] = a
        elif right_changed and name in may_left:
            to_left[name] = b
            new_status[name] = b
        elif known:
            new_status[name] = s  # a change that may not pass: keep the old agreement
    return Decision(to_left, to_right, new_status, tuple(conflicts))


def over_share(changes: Mapping[str, int], totals: Mapping[str, int], share: float
               ) -> str | None:
    """Why a round that would update ``changes[side]`` of the ``totals[side]`` items a link
    holds on each side must wait for a person (None: it may go). The limit per side is
    :func:`syncd.engine.rules.guard_limit` (``share`` of the items, at least its minimum)."""
    for side in sorted(changes):
        limit = guard_limit(share, totals.get(side, 0))
        if limit is not None and changes[side] > limit:
            return (f"{changes[side]} of {totals.get(side, 0)} {side} items would change in "
                    f"one round, more than {share:.0%} (limit {limit}): an odd read? "
                    f"Check both sides, then confirm")
    return None
