"""Failure attribution: what the answers to a batch's writes, deletes and reads mean for each
record and each real-time event. Pure functions over plain data (no actors, no I/O, no clock);
the coordinator sends, reads and stores, and applies what these decide.

- :func:`answered`: the destination's per-record answers to writes and deletes become counts,
  per-record errors (reason, retryable), the links to save or drop and the destination opt-outs
  a write overrode;
- :func:`delete_check`, :func:`delete_unread`: what the direct read that confirms a delete
  means for it (go, keep the profile, or a retryable error of the record);
- :func:`events_answered`: which real-time events are done and which failure each failed one
  takes (an event that names no record read gets the batch's first failure: retrying is
  harmless, losing it is not);
- :func:`dead_or_retry`: which failed events become dead letters and when the others are
  tried again (:func:`syncd.engine.rules.gives_up`, :func:`syncd.engine.rules.retry_delay`).
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from dataclasses import dataclass, field

from syncd.engine import rules as R
from syncd.engine.batch import RecordError
from syncd.engine.store import InboxItem
from syncd.records import Record, WriteResult

#: A link to save after a write: (source record id, destination key, digest, state).
NewLink = tuple[str, str, str | None, dict | None]
#: Why events failed: (reason, retryable).
Problem = tuple[str, bool]


@dataclass
class Answered:
    """What the answers to a batch's writes and deletes mean, in input order."""

    #: ``created``/``updated``/``unchanged``/``deleted``/``failed``: how many of each.
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[RecordError] = field(default_factory=list)
    #: The links of the profiles written (the digest follows the answer).
    links: list[NewLink] = field(default_factory=list)
    #: The destination keys of the profiles deleted: their links go.
    gone: list[str] = field(default_factory=list)
    #: ``(record id, topic, channel)``: destination opt-outs a newer opt-in overrode.
    overridden: list[tuple[str, str, str]] = field(default_factory=list)

    def count(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1


def answered(writes: Sequence[R.Write], write_results: Sequence[WriteResult],
             deletes: Sequence[R.Delete] = (), delete_results: Sequence[WriteResult] = ()
             ) -> Answered:
    """Attribute each answer to its write or delete (answers come in input order, one per
    request). A failed answer is that record's error, with the partner's reason and whether
    retrying may fix it; a write that went saves the profile's link under the key the
    destination gave (``remote_id``), a delete that went drops its link."""
    out = Answered()
    for write, result in zip(writes, write_results, strict=True):
        if result.outcome == "failed":
            out.count("failed")
            out.errors.append((write.profile.key, result.reason or "failed", result.retryable))
            continue
        out.count(result.outcome)
        out.links.append((write.profile.key, result.remote_id or write.profile.key,
                          write.digest, write.state))
        out.overridden.extend((write.profile.key, topic, channel)
                              for topic, channel in write.optouts_overridden)
    for delete, result in zip(deletes, delete_results, strict=True):
        if result.outcome == "failed":
            out.count("failed")
            out.errors.append((delete.key, result.reason or "delete failed", result.retryable))
        else:
            out.count("deleted")
            out.gone.append(delete.key)
    return out


def delete_check(rules: R.Rules, delete: R.Delete, direct: Record | None
                 ) -> R.Delete | RecordError | None:
    """What the direct read of a delete's record (``direct``; None: "not found") means: the
    delete goes (returned), the profile is kept (None: the record exists and matches, see
    :func:`syncd.engine.rules.delete_confirmed`), or, when the read was not whole, a
    retryable error of the record (never a delete on a partial read)."""
    record_id = delete.record_id or delete.key
    if direct is not None and direct.error:
        return (record_id, f"not deleted: the direct read of {record_id} was not whole: "
                           f"{direct.error}", True)
    return delete if R.delete_confirmed(rules, delete, direct) else None


def delete_unread(delete: R.Delete, exc: BaseException) -> RecordError:
    """The error of a delete whose record could not be read directly: retryable, no delete."""
    record_id = delete.record_id or delete.key
    return (record_id, f"not deleted: reading {record_id} directly to confirm the delete "
                       f"failed: {type(exc).__name__}: {exc}", True)


def events_answered(items: Sequence[InboxItem], read: Set[str], errors: Sequence[RecordError]
                    ) -> tuple[list[int], dict[Problem, list[InboxItem]]]:
    """The ids of the events done, and the failed events by their problem, in input order.
    An event takes its record's error (the last one given for it); an event that names no
    record among those ``read`` (e.g. a relationship) takes the first error of the batch when
    there is one: retrying is harmless (writes are idempotent), losing it is not."""
    failed = {key: (reason, retryable) for key, reason, retryable in errors}
    done: list[int] = []
    by_problem: dict[Problem, list[InboxItem]] = {}
    for item in items:
        problem = failed.get(item.event.record_id)
        if problem is None and failed and item.event.record_id not in read:
            problem = next(iter(failed.values()))
        if problem is None:
            done.append(item.id)
        else:
            by_problem.setdefault(problem, []).append(item)
    return done, by_problem


def dead_or_retry(items: Sequence[InboxItem], max_attempts: int, retryable: bool
                  ) -> tuple[list[int], list[tuple[InboxItem, float]]]:
    """Of events failing now: the ids that become dead letters (a failure retrying cannot fix,
    or their last allowed attempt), and the others with the seconds until their next try."""
    dead = [i.id for i in items if R.gives_up(i.attempts, max_attempts, retryable)]
    gone = set(dead)
    return dead, [(i, R.retry_delay(i.attempts)) for i in items if i.id not in gone]
