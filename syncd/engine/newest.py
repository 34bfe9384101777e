"""Newest wins: whether an opt-out made in the destination (an unsubscribe in APSIS One) may
be written back to the source, given what the source holds *now*. Pure functions, no clock.

A write-back withdraws the source's opt-in (Tribe: removes the label; Lime: ``approved =
false``). It must never withdraw an opt-in the person gave in the source *after* the opt-out:

- the source gives the opt-in's time (``Record.label_times``: Tribe's label link
  ``CreationDate``, Lime's consent ``date``; the connectors' options name those fields): an
  opt-in strictly newer than the opt-out wins (:data:`KEEP`: no write-back; the opt-in goes to
  the destination as usual); an older or equal one is withdrawn (:data:`WRITE`);
- the source gives no time (a GAP: Tribe without label links, a Lime consent without a date):
  a change of the record waiting in the inbox, not applied yet, means the source changed
  since: the write-back waits (:data:`WAIT`) until that change is applied, then is decided
  again; with nothing waiting the opt-out, the newest change syncd knows of, is written back;
- the source no longer holds the opt-in: nothing newer, written back (idempotent); the
  record is gone from the source: nothing to withdraw (:data:`DONE`);
- the record could not be read whole: it waits (:data:`WAIT`), never guessed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from syncd.records import Event, Record

WRITE = "write"
KEEP = "keep"
WAIT = "wait"
DONE = "done"


def _when(text: str) -> dt.datetime | None:
    try:
        when = dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def newer(a: str | None, b: str | None) -> bool:
    """True when ISO time ``a`` is strictly later than ``b``; an unknown or unreadable time
    is never newer (the opt-out then stands: never an opt-in kept on a guess)."""
    first, second = _when(a or ""), _when(b or "")
    return first is not None and second is not None and first > second


@dataclass(frozen=True)
class WriteBackCheck:
    """What to do with one pending write-back (:data:`WRITE`, :data:`KEEP`, :data:`WAIT` or
    :data:`DONE`), and why (for ``syncd explain``)."""

    action: str
    reason: str


def check_write_back(label: str, opted_out_at: str, record: Record | None, *,
                     read: bool = True, changed_since: bool = False) -> WriteBackCheck:
    """Whether the destination's opt-out of ``opted_out_at`` (ISO-8601) may withdraw the
    source's opt-in ``label`` of ``record`` (as the source holds it now; None: not found).
    ``read``: False when the source cannot be read directly (the record is then unknown);
    ``changed_since``: a change of the record is waiting in the inbox, not applied yet."""
    if not read:
        return WriteBackCheck(WRITE, "the source cannot read a record directly: written "
                                     "back without checking its opt-in's time")
    if record is None or record.deleted:
        return WriteBackCheck(DONE, "the record is gone from the source: nothing to withdraw")
    if record.error:
        return WriteBackCheck(WAIT, f"the record could not be read whole ({record.error}): "
                                    f"decided again at the next consent poll")
    if label not in record.labels:  # written all the same: idempotent, as it always was
        return WriteBackCheck(WRITE, f"the source holds no opt-in '{label}' now: nothing "
                                     f"newer than the opt-out")
    given = record.label_times.get(label)
    if given:
        if newer(given, opted_out_at):
            return WriteBackCheck(KEEP, f"the opt-in '{label}' given in the source at {given} "
                                        f"is newer than the opt-out at {opted_out_at}: it "
                                        f"wins, nothing is written back")
        return WriteBackCheck(WRITE, f"the opt-in '{label}' given in the source at {given} "
                                     f"is not newer than the opt-out at {opted_out_at}")
    if changed_since:
        return WriteBackCheck(WAIT, f"the source gives no time for the opt-in '{label}' and a "
                                    f"change of the record waits in the inbox: decided again "
                                    f"once it is applied")
    return WriteBackCheck(WRITE, f"the source gives no time for the opt-in '{label}' and no "
                                 f"change of the record waits: the opt-out at {opted_out_at} "
                                 f"is the newest change known")


def concerns(event: Event, key: str) -> bool:
    """Whether a real-time event is a change of the record ``key``: it names the record
    (ids compare case-insensitively), or its data names it as ``person`` (a change of one of
    its parts, e.g. a Lime consent; a list: each key the record may have)."""
    if event.record_id.casefold() == key.casefold():
        return True
    person = (event.data or {}).get("person")
    names = person if isinstance(person, list) else [person]
    return any(p is not None and str(p).casefold() == key.casefold() for p in names)
