"""The pure steps of applying a batch: unreadable records set apart, decisions counted."""

from __future__ import annotations

from syncd.engine import rules as R
from syncd.engine.batch import split_unreadable, tally
from syncd.records import Profile, Record


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


def test_an_overview_tags_members_on_and_former_members_off():
    from syncd.engine.batch import overview_tags
    from syncd.records import Link

    records = [Record("in", email="in@x.nl"), Record("left", email="left@x.nl"),
               Record("new", email="new@x.nl"), Record("never"), Record("bad", error="x")]
    decided = [R.Write(Profile("new", "new@x.nl"), "dn", known=False)]
    links = {"in": Link("in", "d-in", {"t": {}}), "left": Link("left", "d-left", {}),
             "bad": Link("bad", "d-bad", {})}
    writes = overview_tags(records, decided, links, {"in", "new", "never", "bad"}, "vip")
    assert [(w.profile.key, w.profile.tags, w.known) for w in writes] == [
        ("new", {"vip": True}, False), ("in", {"vip": True}, True),
        ("left", {"vip": False}, True)]
    assert writes[1].digest == "d-in" and writes[1].state == {"t": {}}
    assert decided[0].profile.tags == {}  # the rules' writes are not changed in place
