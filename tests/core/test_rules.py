"""The rules as pure functions: named scenarios."""

from syncd.config.model import Condition, ConsentMapping, IntegrationConfig
from syncd.engine import rules as R
from syncd.records import Link, Record


def rec(id="p1", email="jan@example.nl", labels=(), selections=(), **fields):
    return Record(id, fields=fields, email=email, labels=frozenset(labels),
                  selections=frozenset(selections))


def test_no_conditions_match_everything():
    assert R.matches((), rec())


def test_all_conditions_must_hold():
    conds = (Condition("CustomerType", "A"), Condition("Country", "NL"))
    assert R.matches(conds, rec(CustomerType="A", Country="NL"))
    assert not R.matches(conds, rec(CustomerType="A", Country="BE"))
    assert not R.matches(conds, rec(CustomerType="B", Country="NL"))


def test_condition_on_a_missing_field_does_not_match():
    assert not R.matches((Condition("CustomerType", "A"),), rec())


def test_condition_values_compare_as_trimmed_casefolded_text():
    assert R.matches((Condition("Active", True),), rec(Active="true"))
    assert R.matches((Condition("Level", 1),), rec(Level=1.0))
    assert R.matches((Condition("CustomerType", "a"),), rec(CustomerType=" A "))
    assert not R.matches((Condition("Level", 1),), rec(Level=2))


def test_conditions_reach_contact_and_organisation_paths():
    r = rec(**{"Contact.Organization.Name": "Acme"})
    assert R.matches((Condition("Contact.Organization.Name", "acme"),), r)


def test_to_profile_maps_email_and_id_automatically_and_fields_from_config():
    rules = R.Rules(fields={"FirstName": "firstname", "Contact.Organization.Name": "company"})
    profile = R.to_profile(rules, rec(FirstName="Jan", **{"Contact.Organization.Name": "Acme"}))
    assert profile.key == "p1"
    assert profile.email == "jan@example.nl"
    assert profile.attributes == {"firstname": "Jan", "company": "Acme"}


def test_a_mapped_field_that_is_empty_clears_the_attribute():
    profile = R.to_profile(R.Rules(fields={"FirstName": "firstname"}), rec())
    assert profile.attributes == {"firstname": None}


def test_consent_and_selection_mapping():
    rules = R.Rules(consents=(ConsentMapping("Newsletter", "news", "email"),
                              ConsentMapping("SMS offers", "offers", "sms")),
                    selections={"VIP": "vip"})
    profile = R.to_profile(rules, rec(labels={"Newsletter"}, selections={"VIP"}))
    assert {(c.topic, c.channel, c.opted_in) for c in profile.consents} == {
        ("news", "email", True), ("offers", "sms", False)}
    assert profile.tags == {"vip": True}


def test_rules_from_integration_use_the_destination_spelling():
    integration = IntegrationConfig("i", "a", "b", fields={"FirstName": "firstname"})
    rules = R.Rules.from_integration(integration, lambda n: f"x.{n}")
    assert rules.fields == {"FirstName": "x.firstname"}


def test_decide_new_record_is_written_as_unknown():
    d = R.decide(R.Rules(), rec(), None)
    assert isinstance(d, R.Write) and not d.known


def test_decide_unchanged_record_is_left_alone():
    rules = R.Rules(fields={"FirstName": "firstname"})
    first = R.decide(rules, rec(FirstName="Jan"), None)
    again = R.decide(rules, rec(FirstName="Jan"), Link("p1", first.digest))
    assert again == R.Unchanged("p1")


def test_decide_changed_record_is_written_as_known():
    rules = R.Rules(fields={"FirstName": "firstname"})
    first = R.decide(rules, rec(FirstName="Jan"), None)
    changed = R.decide(rules, rec(FirstName="Piet"), Link("p1", first.digest))
    assert isinstance(changed, R.Write) and changed.known
    assert changed.profile.attributes["firstname"] == "Piet"


def test_changed_email_keeps_the_key():
    d = R.decide(R.Rules(), rec(email="new@example.nl"), Link("p1", "old"))
    assert d.profile.key == "p1" and d.profile.email == "new@example.nl"


def test_record_that_stops_matching_is_skipped_not_deleted():
    rules = R.Rules(conditions=(Condition("CustomerType", "A"),))
    d = R.decide(rules, rec(CustomerType="B"), Link("p1", "digest"))
    assert isinstance(d, R.Skip)


def test_record_that_stops_matching_is_deleted_when_enabled():
    rules = R.Rules(conditions=(Condition("CustomerType", "A"),), delete_unmatched=True)
    assert R.decide(rules, rec(CustomerType="B"), Link("p1", "d")) == R.Delete(
        "p1", "no longer matches the sync conditions", "p1")
    # never synced: nothing to delete
    assert isinstance(R.decide(rules, rec(CustomerType="B"), None), R.Skip)


def test_deleted_record_is_never_deleted_by_default():
    deleted = Record("p1", deleted=True)
    assert isinstance(R.decide(R.Rules(), deleted, Link("p1", "d")), R.Skip)


def test_expected_view_drops_cleared_attributes():
    profile = R.to_profile(R.Rules(fields={"A": "a", "B": "b"}), rec(A="x"))
    assert R.expected_view(profile, "email", "id") == {"email": "jan@example.nl", "id": "p1",
                                                       "a": "x"}


def test_a_delete_stands_only_when_the_direct_read_confirms_it():
    rules = R.Rules(conditions=(Condition("CustomerType", "A"),), delete_unmatched=True)
    gone = R.Delete("p1", R.DELETED, "p1")
    assert R.delete_confirmed(rules, gone, None)  # "not found"
    assert R.delete_confirmed(rules, gone, Record("p1", deleted=True))
    assert not R.delete_confirmed(rules, gone, rec(CustomerType="A"))  # only missing from a list
    unmatched = R.Delete("p1", R.UNMATCHED, "p1")
    assert R.delete_confirmed(rules, unmatched, rec(CustomerType="B"))
    assert not R.delete_confirmed(rules, unmatched, rec(CustomerType="A"))
    assert not R.delete_confirmed(R.Rules(), gone, None)  # never without delete_unmatched


def test_opt_outs_syncd_sent_are_remembered_and_inferred_ones_of_them_unresolved():
    from syncd.engine.rules import delta, split_inferred
    from syncd.records import Consent, ConsentChange, Link, Profile

    out = Consent("news", "email", False)
    sent, state, _ = delta(Profile("k", None, consents=(out,)), {"c": {"news|email": True}})
    assert sent.consents == (out,) and state["w"] == ["news|email"]
    back_in = Consent("news", "email", True)
    _, state, _ = delta(Profile("k", None, consents=(back_in,)), state)
    assert "w" not in state  # syncd's last word is an opt-in again
    never_sent = delta(Profile("k", None, consents=(out,)), None)[1]
    assert "w" not in never_sent  # an opt-out never sent is not syncd's
    links = {"k": Link("k", None, {"c": {"news|email": False}, "w": ["news|email"]})}
    inferred = ConsentChange("k", "news", "email", False, "t", inferred=True)
    named = ConsentChange("k", "news", "email", False, "t")
    other = ConsentChange("j", "news", "email", False, "t", inferred=True)
    kept, unresolved = split_inferred([inferred, named, other], links)
    assert kept == [named, other] and unresolved == [inferred]


def test_the_guard_limit_is_the_share_of_the_profiles_kept_and_at_least_the_minimum():
    assert R.GUARD_MINIMUM == 10
    assert R.guard_limit(0.1, 1000) == 100
    assert R.guard_limit(0.29, 100) == 29  # no float rounding down to 28
    assert R.guard_limit(0.1, 50) == 10 and R.guard_limit(0.0, 10_000) == 10
    assert R.guard_limit(1.0, 50) is None  # 1: no limit


def test_the_guard_allows_up_to_the_limit_and_nothing_while_held():
    assert R.guard_allowance(0, 30, 10, held=False) == 10
    assert R.guard_allowance(7, 2, 10, held=False) == 2
    assert R.guard_allowance(10, 1, 10, held=False) == 0
    assert R.guard_allowance(12, 5, 10, held=False) == 0
    assert R.guard_allowance(0, 5, 10, held=True) == 0
    assert R.guard_allowance(500, 5, None, held=False) == 5


def test_a_held_write_keeps_attributes_and_tags_and_the_consents_last_written():
    rules = R.Rules(fields={"FirstName": "firstname"},
                    consents=(ConsentMapping("Newsletter", "news", "email"),),
                    selections={"VIP": "vip"})
    first = R.decide(rules, rec(labels={"Newsletter"}), None)
    link = Link("p1", first.digest, first.state)
    write = R.decide(rules, rec(FirstName="Piet", selections={"VIP"}), link)
    assert write.flipped == ("news|email",)
    held = R.hold_consents(write)
    assert held.profile.consents == () and held.flipped == ()
    assert held.profile.attributes == {"firstname": "Piet"}
    assert held.profile.tags == {"vip": True}
    assert held.state["c"] == {"news|email": True} and held.digest is None
    again = R.decide(rules, rec(FirstName="Piet", selections={"VIP"}),
                     Link("p1", held.digest, held.state))
    assert again.flipped == ("news|email",)  # derived again at the next evaluation


def test_a_held_write_remembers_only_the_opt_outs_really_sent():
    rules = R.Rules(consents=(ConsentMapping("Newsletter", "news", "email"),))
    first = R.decide(rules, rec(labels={"Newsletter"}), None)
    out = R.decide(rules, rec(), Link("p1", first.digest, first.state))
    assert out.state["w"] == ["news|email"]  # sent: syncd's opt-out
    assert "w" not in R.hold_consents(out).state  # held: not sent, not syncd's
    sent = Link("p1", out.digest, out.state)
    back_in = R.decide(rules, rec(labels={"Newsletter"}), sent)
    assert "w" not in back_in.state
    assert R.hold_consents(back_in).state["w"] == ["news|email"]  # still syncd's opt-out
