"""The two-way decision (syncd.engine.twoway): who changed what since the status, echo suppression,
newest-wins conflicts with the loser named, fields one side may not be written."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from syncd.engine.twoway import decide, over_share

F = ("givenName", "surname", "email")


def test_first_sync_takes_the_left_side():
    empty = dict.fromkeys(F)  # the right side holds the fields, empty
    d = decide({"givenName": "Jan", "surname": "Dijk", "email": None}, empty, {}, F)
    assert d.to_right == {"givenName": "Jan", "surname": "Dijk"} and d.to_left == {}
    assert d.status == {"givenName": "Jan", "surname": "Dijk", "email": None}


def test_a_field_missing_from_a_side_is_unknown_never_empty():
    status = {"givenName": "Jan", "surname": "Dijk", "email": "j@x.nl"}
    # the right side's answer lacks surname and email (an odd read): nothing is written
    # either way for them, and what both sides agreed on is kept
    d = decide(status, {"givenName": "Jan"}, status, F)
    assert d.empty and d.status == status
    # a change of a known field still goes; the unknown ones stay untouched
    d = decide(status, {"givenName": "Johan"}, status, F)
    assert d.to_left == {"givenName": "Johan"} and d.to_right == {}
    assert d.status == dict(status, givenName="Johan")
    # the left side (the CRM) lacking a field never empties the right side either
    d = decide({"givenName": "Jan"}, dict(status, email="new@x.nl"), status, F)
    assert d.to_right == {} and d.to_left == {}
    # an explicit empty value is a value: it goes
    d = decide(dict(status, email=None), status, status, F)
    assert d.to_right == {"email": None}
    # never synced and unknown on one side: nothing, and no status for it
    d = decide({"givenName": "Jan"}, {}, {}, F)
    assert d.empty and d.status == {}


def test_over_share_holds_a_round_that_changes_too_much_at_once():
    assert over_share({"outlook": 10, "tribe": 0}, {"outlook": 12, "tribe": 12}, 0.1) is None
    why = over_share({"outlook": 11, "tribe": 0}, {"outlook": 12, "tribe": 12}, 0.1)
    assert why is not None and "11 of 12 outlook" in why
    assert over_share({"tribe": 20}, {"tribe": 200}, 0.1) is None
    assert "21 of 200 tribe" in (over_share({"tribe": 21}, {"tribe": 200}, 0.1) or "")
    assert over_share({"outlook": 500}, {"outlook": 500}, 1.0) is None  # 1: off


def test_a_change_on_one_side_goes_to_the_other():
    status = {"givenName": "Jan", "surname": "Dijk", "email": "j@x.nl"}
    right = dict(status, email="jan@x.nl")
    d = decide(status, right, status, F)
    assert d.to_left == {"email": "jan@x.nl"} and d.to_right == {}
    assert d.status["email"] == "jan@x.nl"
    d = decide(dict(status, surname="Vries"), status, status, F)
    assert d.to_right == {"surname": "Vries"} and d.to_left == {}


def test_own_write_coming_back_is_no_change():
    status = {"givenName": "Jan", "surname": "Vries", "email": None}
    # syncd wrote surname=Vries to the right; its notification shows exactly that
    d = decide(status, dict(status), status, F)
    assert d.empty and not d.conflicts


def test_conflicting_edits_newest_wins_and_the_loser_is_named():
    status = {"givenName": "Jan", "surname": "Dijk", "email": None}
    left, right = dict(status, surname="Left"), dict(status, surname="Right")
    d = decide(left, right, status, F, left_time="2026-01-01T10:00:00Z",
               right_time="2026-01-01T10:05:00Z")
    assert d.to_left == {"surname": "Right"} and d.to_right == {}
    (c,) = d.conflicts
    assert c.winner == "right" and c.loser_value == "Left"
    d = decide(left, right, status, F, left_time="2026-01-01T10:06:00Z",
               right_time="2026-01-01T10:05:00Z")
    assert d.to_right == {"surname": "Left"} and d.conflicts[0].loser_value == "Right"
    d = decide(left, right, status, F)  # no times: the left side (system of record)
    assert d.to_right == {"surname": "Left"}


def test_a_field_the_left_may_not_take_stays_until_the_left_changes_it():
    status = {"givenName": "Jan", "surname": "Dijk", "email": "a@x"}
    right = dict(status, email="b@x")
    d = decide(status, right, status, F, left_fields=("givenName", "surname"))
    assert d.empty and d.status["email"] == "a@x"
    d = decide(dict(status, email="c@x"), right, status, F,
               left_fields=("givenName", "surname"))
    assert d.to_right == {"email": "c@x"}


def test_empty_and_none_are_the_same():
    assert decide({"email": ""}, {"email": None}, {"email": None}, F).empty


values = st.sampled_from([None, "a", "b", "c"])
sides = st.fixed_dictionaries(dict.fromkeys(F, values))


@given(sides, sides, sides, st.booleans())
def test_after_applying_a_decision_both_sides_agree_and_nothing_is_left(left, right, status,
                                                                        newer):
    d = decide(left, right, status, F, left_time="1", right_time="2" if newer else "0")
    left2, right2 = {**left, **d.to_left}, {**right, **d.to_right}
    assert left2 == right2
    assert decide(left2, right2, d.status, F).empty  # idempotent: no ping-pong
