"""Contract tests of the destination capabilities and of the schema check.

Subclass them in a connector's test module and give a ``harness`` fixture
(:class:`syncd.testing.harness.Harness`).
"""

from __future__ import annotations

from syncd.records import NeedKind
from syncd.testing.harness import Harness

KEYS = ("contract-3", "contract-1", "contract-2")


class ProfileWriterContract:
    """WRITE_PROFILES: one result per profile in input order; writes are idempotent."""

    def test_one_result_per_profile_in_input_order(self, harness: Harness):
        profiles = [harness.new_profile(k) for k in KEYS]
        results = harness.connector.write_profiles(profiles, set())
        assert [(r.key, r.outcome) for r in results] == [(k, "created") for k in KEYS]
        for key in KEYS:
            assert harness.profile(key) is not None, key

    def test_writing_the_same_profile_twice_is_harmless(self, harness: Harness):
        profile = harness.new_profile("contract-twice")
        assert harness.connector.write_profiles([profile], set())[0].outcome == "created"
        held = harness.profile("contract-twice")
        again = harness.connector.write_profiles([profile], {"contract-twice"})
        assert [r.outcome for r in again] in (["updated"], ["unchanged"])
        assert harness.profile("contract-twice") == held


class ProfileDeleterContract:
    """DELETE_PROFILES: one result per key in input order; what is not there is deleted."""

    def test_deletes_answer_in_input_order(self, harness: Harness):
        harness.connector.write_profiles([harness.new_profile(k) for k in KEYS[:2]], set())
        keys = [KEYS[1], "contract-never-there", KEYS[0]]
        results = harness.connector.delete_profiles(keys)
        assert [(r.key, r.outcome) for r in results] == [(k, "deleted") for k in keys]
        assert harness.profile(KEYS[0]) is None and harness.profile(KEYS[1]) is None


class BulkWriterContract:
    """BULK_WRITE: like write_profiles, in one import: one result per profile in order."""

    def test_one_result_per_profile_in_input_order(self, harness: Harness):
        keys = [f"contract-bulk-{i}" for i in (5, 2, 9, 1)]
        results = harness.connector.bulk_write([harness.new_profile(k) for k in keys])
        assert [r.key for r in results] == keys
        assert {r.outcome for r in results} <= {"created", "updated"}
        for key in keys:
            assert harness.profile(key) is not None, key

    def test_a_bulk_write_again_changes_nothing(self, harness: Harness):
        keys = ["contract-bulk-a", "contract-bulk-b"]
        harness.connector.bulk_write([harness.new_profile(k) for k in keys])
        held = [harness.profile(k) for k in keys]
        results = harness.connector.bulk_write([harness.new_profile(k) for k in keys])
        assert [r.key for r in results] == keys and not [r for r in results
                                                        if r.outcome == "failed"]
        assert [harness.profile(k) for k in keys] == held


class ConsentChangeReaderContract:
    """READ_CONSENT_CHANGES: the first read starts from now; an unsubscribe comes back once."""

    def test_the_first_read_starts_from_now(self, harness: Harness):
        profile, topic, channel = harness.subscribed_profile("contract-early")
        harness.connector.write_profiles([profile], set())
        harness.unsubscribe("contract-early", topic, channel)
        changes, cursor = harness.connector.read_consent_changes(None)
        assert changes == [] and cursor is not None

    def test_an_unsubscribe_comes_back_exactly_once(self, harness: Harness):
        profile, topic, channel = harness.subscribed_profile("contract-unsub")
        assert harness.connector.write_profiles([profile], set())[0].outcome == "created"
        _, cursor = harness.connector.read_consent_changes(None)
        harness.unsubscribe("contract-unsub", topic, channel)
        changes, cursor = harness.connector.read_consent_changes(cursor)
        assert [(c.key, c.topic, c.channel, c.opted_in) for c in changes] == [
            ("contract-unsub", topic, channel, False)]
        again, _ = harness.connector.read_consent_changes(cursor)
        assert again == []


class ProfileReaderContract:
    """READ_PROFILES: one state per key in input order; "not found" for a key the partner
    does not have; what the partner holds, a change made in the partner included; a value
    the partner does not name is unknown (left out), never empty. Uses
    ``harness.readable_profile`` and ``harness.change_in_partner``."""

    def test_one_state_per_key_in_input_order(self, harness: Harness):
        a, b = harness.readable_profile("contract-read-a"), harness.readable_profile(
            "contract-read-b")
        keys = [b.key, "contract-read-missing", a.key]
        states = harness.connector.read_profiles(keys)
        assert [(s.key, s.found, s.error) for s in states] == [
            (b.key, True, None), ("contract-read-missing", False, None), (a.key, True, None)]
        held = states[2]
        for name, value in a.attributes.items():
            assert held.attributes.get(name) == value, name
        for consent in a.consents:
            assert held.consents.get(f"{consent.topic}|{consent.channel}") is \
                consent.opted_in
        for tag, on in a.tags.items():
            assert held.tags.get(tag) is on, tag

    def test_a_change_made_in_the_partner_is_read(self, harness: Harness):
        profile = harness.readable_profile("contract-read-changed")
        name, value = harness.change_in_partner(profile.key)
        (state,) = harness.connector.read_profiles([profile.key])
        assert state.found and state.attributes.get(name) == value

    def test_what_the_partner_does_not_name_is_unknown(self, harness: Harness):
        profile = harness.readable_profile("contract-read-unknown")
        (state,) = harness.connector.read_profiles([profile.key])
        assert "contract.never.defined" not in state.attributes
        assert all(v is not None for v in state.consents.values())
        assert harness.connector.read_profiles([]) == []


class SchemaCheckerContract:
    """CHECK_SCHEMA: what the account has passes; a missing name is a problem on its key."""

    def test_what_the_account_has_passes(self, harness: Harness):
        problems = harness.connector.check_schema(harness.needs_met())
        assert [p for p in problems if p.severity == "error"] == []

    def test_a_missing_name_is_a_problem_on_its_key(self, harness: Harness):
        needs, key = harness.needs_unmet()
        problems = harness.connector.check_schema(needs)
        assert key in {p.key for p in problems if p.severity == "error"}
        assert all(p.key and p.message for p in problems)
        assert {n.kind for n in needs.items} <= set(NeedKind)
