"""Newest wins (syncd.engine.newest): whether a destination opt-out may withdraw the source's
opt-in, from the source's record as it is now; and which inbox events are changes of a record."""

import pytest

from syncd.engine.newest import DONE, KEEP, WAIT, WRITE, check_write_back, concerns
from syncd.records import Event, Record

OUT = "2026-11-30T10:00:00.000Z"  # the opt-out in the destination


def record(times=None, labels=("Newsletter",), **kw):
    return Record("p1", labels=frozenset(labels), label_times=times or {}, **kw)


@pytest.mark.parametrize("given, action", [
    ("2026-11-30T10:00:00.001Z", KEEP),  # a millisecond later: newer
    ("2026-11-30T11:00:00+01:00", WRITE),  # the same moment in another offset: not newer
    ("2026-11-30T09:59:59.999Z", WRITE),
])
def test_the_opt_in_time_decides(given, action):
    check = check_write_back("Newsletter", OUT, record({"Newsletter": given}))
    assert check.action == action
    assert given in check.reason and OUT in check.reason


def test_without_a_time_a_waiting_change_holds_the_write_back():
    assert check_write_back("Newsletter", OUT, record(), changed_since=True).action == WAIT
    check = check_write_back("Newsletter", OUT, record(), changed_since=False)
    assert check.action == WRITE and "no time" in check.reason


def test_a_time_of_another_label_is_no_time():
    check = check_write_back("Newsletter", OUT, record({"Events": "2027-01-01T00:00:00Z"}),
                             changed_since=True)
    assert check.action == WAIT


def test_with_a_time_a_waiting_change_does_not_hold_it():
    """The record read now is what the source holds: its opt-in's time is enough."""
    check = check_write_back("Newsletter", OUT, record({"Newsletter": "2026-11-30T09:00:00Z"}),
                             changed_since=True)
    assert check.action == WRITE


def test_no_opt_in_left_is_written_gone_is_done_unreadable_waits_unread_is_written():
    assert check_write_back("Newsletter", OUT, record(labels=())).action == WRITE
    assert check_write_back("Newsletter", OUT, None).action == DONE
    assert check_write_back("Newsletter", OUT, record(deleted=True)).action == DONE
    unreadable = check_write_back("Newsletter", OUT, record(error="labels missing"))
    assert unreadable.action == WAIT and "labels missing" in unreadable.reason
    assert check_write_back("Newsletter", OUT, None, read=False).action == WRITE


def test_an_unreadable_time_is_never_newer():
    check = check_write_back("Newsletter", OUT, record({"Newsletter": "yesterday"}))
    assert check.action == WRITE
    naive = check_write_back("Newsletter", OUT, record({"Newsletter": "2026-11-30T10:00:01"}))
    assert naive.action == KEEP  # a time without an offset is UTC
    assert check_write_back("Newsletter", "", record({"Newsletter": OUT})).action == WRITE


def test_which_events_are_changes_of_a_record():
    assert concerns(Event("ABC-1"), "abc-1")
    assert concerns(Event("consent:7", entity="consent", data={"person": 1001}), "1001")
    assert not concerns(Event("consent:7", entity="consent", data={"person": 1002}), "1001")
    assert not concerns(Event("company:3", entity="company"), "1001")
    assert not concerns(Event("abc-2"), "abc-1")


def test_waiting_changes_are_the_pending_events_of_the_records(tmp_path):
    from syncd.engine.store import Store
    from syncd.engine.writeback import waiting_changes

    store = Store(str(tmp_path / "s.db"))
    ids = store.enqueue([("i", "crm", Event("ABC-1")),
                         ("i", "crm", Event("consent:7", entity="consent",
                                            data={"event": "consent.new", "person": 1001})),
                         ("i", "crm", Event("company:3", entity="company")),
                         ("other", "crm", Event("p9")),
                         ("i", "crm", Event("p9"))])
    keys = ["abc-1", "1001", "p9", "p4"]
    assert waiting_changes(store, "i", keys) == {"abc-1", "1001", "p9"}
    store.mark_done([ids[4]])  # applied: no longer waits
    assert waiting_changes(store, "i", keys) == {"abc-1", "1001"}
    assert waiting_changes(store, "i", []) == set()
    store.close()


def test_an_unreadable_label_time_never_overrides_an_opt_out_in_a_sync():
    from syncd.config.model import ConsentMapping
    from syncd.engine.rules import Rules, resolve_consents

    rules = Rules(consents=(ConsentMapping("Newsletter", "news", "email"),))
    optouts = {("news", "email"): OUT}
    garbled = record({"Newsletter": "zz-not-a-time"})
    (consent,), overridden = resolve_consents(rules, garbled, optouts)
    assert consent.opted_in is False and overridden == ()
    later = record({"Newsletter": "2026-11-30T10:00:01"})  # no offset: UTC
    (consent,), overridden = resolve_consents(rules, later, optouts)
    assert consent.opted_in is True and overridden == (("news", "email"),)
