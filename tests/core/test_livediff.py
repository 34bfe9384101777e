"""livediff: a record against its destination profile read live (dry runs), pure."""

from __future__ import annotations

from syncd.config.model import ConsentMapping
from syncd.engine import livediff as L
from syncd.engine import rules as R
from syncd.records import Link, ProfileState, Record

RULES = R.Rules(fields={"FirstName": "firstname", "City": "city"},
                consents=(ConsentMapping("News", "news", "email"),),
                selections={"VIP": "vip"}, delete_unmatched=True)
AT = "2026-11-30T10:00:00+00:00"


def record(**fields):
    return Record("r1", {"FirstName": "Jan", "City": "Delft", **fields}, email="j@x.nl",
                  labels=frozenset({"News"}), label_times={"News": "2026-01-01T00:00:00+00:00"},
                  selections=frozenset({"VIP"}))


def state(**changes):
    base = {"found": True, "attributes": {"firstname": "Jan", "city": "Delft"},
            "email": "j@x.nl", "consents": {"news|email": True}, "tags": {"vip": True}}
    return ProfileState("r1", **{**base, **changes})


LINK = Link("r1", "digest-of-an-older-write", {"c": {"news|email": True}, "t": {"vip": True}})


def test_a_profile_like_the_source_is_unchanged():
    assert L.diff(RULES, record(), LINK, None, state(), AT).action == "unchanged"


def test_an_attribute_edited_in_the_destination_is_an_update_written_in_full():
    entry = L.diff(RULES, record(), LINK, None,
                   state(attributes={"firstname": "Edited", "city": "Delft"}), AT)
    assert entry.action == "update"
    assert entry.details["attributes"] == {"firstname": {"old": "Edited", "new": "Jan"}}
    assert entry.write is not None and entry.write.profile.attributes == {
        "firstname": "Jan", "city": "Delft"}
    assert entry.write.profile.consents == () and entry.write.profile.tags == {}


def test_an_attribute_the_read_does_not_name_is_unknown_not_empty():
    entry = L.diff(RULES, record(City=None), LINK, None,
                   state(attributes={"firstname": "Jan"}), AT)
    assert entry.details["attributes"] == {"city": {"new": None, "unknown": True}}


def test_numbers_read_as_text_are_the_same():
    assert L.same("1", 1) and L.same("", None) and L.same(True, "true")
    assert not L.same("jan", "Jan") and not L.same(None, "x")


def test_an_opt_out_made_in_the_destination_is_kept_over_an_older_opt_in():
    entry = L.diff(RULES, record(), LINK, None, state(consents={"news|email": False}), AT)
    assert entry.action == "unchanged" and entry.details["kept"] == {"news|email": L.KEPT}


def test_a_newer_opt_in_in_the_source_opts_in_again():
    optouts = {("news", "email"): "2025-06-01T00:00:00+00:00"}  # read before, with its time
    entry = L.diff(RULES, record(), LINK, optouts, state(consents={"news|email": False}), AT)
    assert entry.details["consent_changes"] == {
        "news|email": {"old": False, "new": True, "why": L.OVERRIDDEN}}
    assert entry.write is not None and entry.write.flipped == ("news|email",)
    assert entry.write.optouts_overridden == (("news", "email"),)


def test_an_opt_out_syncd_wrote_is_not_a_persons():
    ours = Link("r1", None, {"c": {"news|email": False}, "t": {}, "w": ["news|email"]})
    entry = L.diff(RULES, record(), ours, None, state(consents={"news|email": False}), AT)
    assert entry.details["consent_changes"]["news|email"] == {"old": False, "new": True}


def test_unknown_consents_and_tags_are_sent_only_where_the_source_sets_them():
    entry = L.diff(RULES, record(), LINK, None, state(consents={}, tags={}), AT)
    assert entry.details["consent_changes"] == {"news|email": {"new": True, "unknown": True}}
    assert entry.details["tag_changes"] == {"vip": {"old": None, "new": True}}
    off = Record("r1", {"FirstName": "Jan", "City": "Delft"}, email="j@x.nl")
    assert L.diff(RULES, off, LINK, None, state(consents={}, tags={}), AT).action == \
        "unchanged"


def test_not_in_the_destination_is_a_create_even_where_syncd_wrote_it():
    entry = L.diff(RULES, record(), LINK, None, ProfileState("r1", found=False), AT)
    assert entry.action == "create" and "no longer in the destination" in entry.details["note"]
    assert entry.write is not None and entry.write.known is False


def test_a_delete_of_a_profile_not_there_is_no_change():
    gone = Record("r1", deleted=True)
    assert L.diff(RULES, gone, LINK, None, ProfileState("r1", found=False), AT).action == \
        "unchanged"
    assert L.diff(RULES, gone, LINK, None, state(), AT).action == "delete"


def test_moved_names_what_changed_between_two_reads():
    before = L.snapshot(RULES, state())
    assert L.moved(before, L.snapshot(RULES, state())) == []
    now = L.snapshot(RULES, state(attributes={"firstname": "Jo", "city": "Delft"},
                                  tags={"vip": True, "unmapped": True}))
    assert L.moved(before, now) == ["firstname: 'Jan' -> 'Jo'"]
    assert L.moved(before, L.snapshot(RULES, ProfileState("r1", False))) == [
        "the profile is gone"]
