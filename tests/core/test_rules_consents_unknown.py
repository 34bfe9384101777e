"""Consents changed in the destination behind syncd's back become unknown in the links: a
pure function of the links and the changes."""

from __future__ import annotations

from syncd.engine.rules import consents_unknown
from syncd.records import Link


def test_a_changed_consent_becomes_unknown_and_the_digest_is_dropped():
    links = {"p1": Link("p1", "digest", {"c": {"news|email": True, "offers|email": True},
                                         "t": {"vip": True}, "w": ["x"]})}
    out = consents_unknown(links, [("p1", "news", "email")])
    assert out["p1"] == Link("p1", None, {"c": {"news|email": None, "offers|email": True},
                                          "t": {"vip": True}, "w": ["x"]})
    assert links["p1"].state["c"]["news|email"] is True  # the given links are not changed


def test_several_changes_of_one_record_add_up_and_unlinked_records_are_left_out():
    links = {"p1": Link("p1", "d", {"c": {"news|email": True}})}
    out = consents_unknown(links, [("p1", "news", "email"), ("p1", "news", "sms"),
                                   ("p9", "news", "email")])
    assert set(out) == {"p1"}
    assert out["p1"].state["c"] == {"news|email": None, "news|sms": None}
    assert out["p1"].state["t"] == {}
