"""Pure steps of applying a batch of records: set apart what the source could not read
whole, and count the rules' decisions. No actors, no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import replace

from syncd.engine import rules as R
from syncd.records import Link, Profile, Record

#: A per-record error: (record id, reason, retryable).
RecordError = tuple[str, str, bool]


def split_unreadable(records: Sequence[Record], source: str
                     ) -> tuple[list[Record], list[RecordError]]:
    """The records to decide, and the errors of those the source could not read whole
    (``Record.error``): they fail, retryable, and nothing is decided for them."""
    errors = [(r.id, f"reading from {source}: {r.error}", True) for r in records if r.error]
    return [r for r in records if not r.error], errors


def tally(decisions: Sequence[R.Write | R.Unchanged | R.Skip | R.Delete], *, unreadable: int = 0
          ) -> tuple[dict[str, int], list[R.Write], list[R.Delete]]:
    """The counts of what needs no write (``processed`` includes ``unreadable`` records,
    counted ``failed``), the writes and the deletes, in input order."""
    counts = {"processed": len(decisions) + unreadable}
    if unreadable:
        counts["failed"] = unreadable
    writes: list[R.Write] = []
    deletes: list[R.Delete] = []
    for decision in decisions:
        if isinstance(decision, R.Write):
            writes.append(decision)
        elif isinstance(decision, R.Unchanged):
            counts["unchanged"] = counts.get("unchanged", 0) + 1
        elif isinstance(decision, R.Skip):
            counts["skipped"] = counts.get("skipped", 0) + 1
        else:
            deletes.append(decision)
    return counts, writes, deletes


def overview_tags(records: Sequence[Record], writes: Sequence[R.Write],
                  links: Mapping[str, Link], members: Set[str], tag: str) -> list[R.Write]:
    """The writes of an overview import: ``writes`` (the rules' decisions for ``records``)
    and a write for every other record syncd has a profile for, each carrying ``tag`` on
    for the overview's ``members`` and off for the others. Records the source could not read
    whole, and records with neither a write nor a profile, are left alone."""
    out = list(writes)
    for record in records:
        if record.error:
            continue  # failed: its membership is applied when it reads whole
        link = links.get(record.id)
        i = next((n for n, w in enumerate(out) if w.profile.key == record.id), None)
        if i is None:
            if link is None:
                continue  # never synced and not to be: no profile to tag
            out.append(R.Write(Profile(record.id, record.email), link.digest, known=True,
                               state=link.state))
            i = len(out) - 1
        write = out[i]
        out[i] = replace(write, profile=replace(
            write.profile, tags={**write.profile.tags, tag: record.id in members}))
    return out
