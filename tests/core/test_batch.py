"""The pure steps of applying a batch: unreadable records set apart, decisions counted."""

from __future__ import annotations

from syncd.engine import rules as R
from syncd.engine.batch import split_unreadable, tally
from syncd.engine.records import Profile, Record


def test_unreadable_records_fail_retryable_and_are_not_decided():
    records = [Record("a"), Record("b", error="labels missing"), Record("c")]
    ok, errors = split_unreadable(records, "crm")
    assert [r.id for r in ok] == ["a", "c"]
    assert errors == [("b", "reading from crm: labels missing", True)]


def test_decisions_are_counted_and_kept_in_order():
    w1 = R.Write(Profile("1", None), "d1", known=False)
    w2 = R.Write(Profile("2", None), "d2", known=True)
    delete = R.Delete("3", "stopped matching")
    counts, writes, deletes = tally([w1, R.Unchanged("4"), delete, R.Skip("5", "no"), w2],
                                    unreadable=2)
    assert counts == {"processed": 7, "failed": 2, "unchanged": 1, "skipped": 1}
    assert writes == [w1, w2] and deletes == [delete]
    assert tally([]) == ({"processed": 0}, [], [])
