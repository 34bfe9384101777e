"""The write-back of an unsubscribe in APSIS to the CRM checks the CRM's own consent time first:
newest wins. A person who unsubscribed in APSIS at t1 and opted in again in the CRM at t2 > t1
ends opted in on both sides, whatever the order in which syncd sees the CRM's webhook and the
consent poll; the plain unsubscribe is still written back; where the CRM gives no time, a
change of the record waiting in the inbox holds the write-back until it is applied.

Real emulators (Tribe or Lime, APSIS One), a real coordinator over real connection actors, a
real SQLite file; the order is set by when the test puts the webhook in the inbox, tells the
coordinator to apply it, and runs the consent poll."""

from __future__ import annotations

import pytest
from crm_support import apsis_emulator
from writeback_support import LimeSide, Sync, TribeSide

from syncd.engine.explain import story
from syncd.engine.writeback import write_back_events

pytestmark = pytest.mark.usefixtures("actors")

#: poll_first: the poll runs before the webhook arrives; in_inbox: the webhook waits in the
#: inbox, not applied, during the poll; applied_first: it was applied before the poll.
ORDERS = ["poll_first", "in_inbox", "applied_first"]


@pytest.fixture
def apsis():
    with apsis_emulator(seed=3, exports=True) as emu:
        yield emu


@pytest.fixture(params=["tribe", "lime"])
def side(request):
    if request.param == "tribe":
        return TribeSide(request.getfixturevalue("tribe"))
    return LimeSide(request.getfixturevalue("lime"))


def checks(sync: Sync) -> list[tuple[str, str]]:
    """The write-back checks ``syncd explain`` tells of the person: (action, reason)."""
    entries = story(sync.store, sync.name, sync.side.key)["entries"]
    return [(e["data"]["action"], e["data"]["reason"]) for e in entries
            if e["kind"] == "writeback"]


@pytest.mark.parametrize("order", ORDERS)
def test_a_newer_opt_in_in_the_crm_wins_over_an_older_unsubscribe(tmp_path, apsis, side, order):
    sync = Sync(tmp_path, apsis, side)
    sync.optin_synced()
    row = sync.unsubscribe()  # t1
    assert sync.apsis_opted_in() is False
    side.opt_in_again()  # t2 > t1, its webhook on its way
    if order == "poll_first":
        sync.poll_past(row)
        sync.arrive()
        sync.deliver()
    elif order == "in_inbox":
        sync.arrive()
        sync.poll_past(row)
        assert sync.store.pending_count(sync.name) == 1  # it was not applied meanwhile
        sync.deliver()
    else:
        sync.arrive()
        sync.deliver()
        sync.poll_past(row)
    assert side.opted_in() is True  # the newer opt-in was not withdrawn
    assert sync.apsis_opted_in() is True  # and it reached APSIS again
    assert sync.store.unwritten_optouts(sync.name) == []
    assert [a for a, _ in checks(sync)] == ["keep"]
    assert "is newer than the opt-out" in checks(sync)[0][1]
    sync.arrive()  # whatever comes next from the CRM (a full sync, another webhook)
    sync.deliver()
    sync.poll()
    assert side.opted_in() is True and sync.apsis_opted_in() is True


def test_an_unsubscribe_with_nothing_newer_in_the_crm_is_written_back(tmp_path, apsis, side):
    sync = Sync(tmp_path, apsis, side)
    sync.optin_synced()
    row = sync.unsubscribe()
    sync.poll_past(row)
    assert side.opted_in() is False  # written back
    assert sync.apsis_opted_in() is False
    assert sync.store.unwritten_optouts(sync.name) == []
    assert [a for a, _ in checks(sync)] == ["write"]
    assert "is not newer than the opt-out" in checks(sync)[0][1]


@pytest.mark.parametrize("crm", ["tribe", "lime"])
def test_without_a_crm_time_a_change_waiting_in_the_inbox_holds_the_write_back(
        tmp_path, apsis, request, crm):
    """No opt-in times: Tribe with labels read straight (``Labels``, no label links), Lime
    with ``consent_time_property = "none"`` (its webhook names the consent, and the person in
    its data). The change waiting in the inbox holds the write-back, which shows as pending,
    until it is applied; then it is decided again (and, with still no time, written back)."""
    if crm == "tribe":
        side = TribeSide(request.getfixturevalue("tribe"), labels_nav="Labels",
                         label_link_label_nav="")
    else:
        side = LimeSide(request.getfixturevalue("lime"), consent_time_property="none")
    sync = Sync(tmp_path, apsis, side)
    sync.optin_synced()
    row = sync.unsubscribe()
    side.opt_in_again()
    sync.arrive()
    sync.poll_past(row)
    assert side.opted_in() is True  # not withdrawn while the change waits
    pending = write_back_events(sync.store, sync.name)
    assert [(e["record_id"], e["status"]) for e in pending] == [(side.key, "pending")]
    assert pending[0]["error"].startswith("wait: the source gives no time")
    sync.deliver()  # the change is applied: the write-back is decided again
    sync.coord.ping().get(timeout=30)
    assert side.opted_in() is False  # no time: the opt-out is the newest change known
    assert write_back_events(sync.store, sync.name) == []
    assert [a for a, _ in checks(sync)] == ["wait", "write"]
