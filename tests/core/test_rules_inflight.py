"""Consents and tags in flight (syncd.engine.inflight): what the rules send and count as a
flip when the answer of the write before was lost. Pure: no actors, no store."""

from syncd.config.model import ConsentMapping
from syncd.engine import rules as R
from syncd.engine.inflight import before_answer, in_flight_keys
from syncd.records import Consent, Link, Record

NEWS = ConsentMapping("Newsletter", "news", "email")
RULES = R.Rules(consents=(NEWS,), selections={"VIP": "vip"})


def rec(labels=(), selections=()):
    return Record("p1", email="a@x.nl", labels=frozenset(labels),
                  selections=frozenset(selections))


def written(record, link=None):
    """The link a write of ``record`` leaves: before its answer, and after it."""
    write = R.decide(RULES, record, link)
    assert isinstance(write, R.Write)
    return write, Link("p1", None, before_answer(write)), Link("p1", write.digest, write.state)


def test_what_a_write_sends_is_in_flight_until_its_answer():
    _, _, created = written(rec())
    write, pending, answered = written(rec({"Newsletter"}, {"VIP"}), created)
    assert in_flight_keys(pending.state) == ({"news|email"}, {"vip"})
    assert pending.state["c"] == {"news|email": True} and pending.state["t"] == {"vip": True}
    assert in_flight_keys(answered.state) == (set(), set())  # the answer confirms it


def test_a_change_back_after_a_lost_answer_is_sent():
    """Opt-in and tag sent, their answer lost; the source goes back: the opt-out and the
    cleared tag are sent (the destination may hold what the lost write sent)."""
    _, _, created = written(rec())
    _, lost, _ = written(rec({"Newsletter"}, {"VIP"}), created)
    back = R.decide(RULES, rec(), lost)
    assert back.profile.consents == (Consent("news", "email", False),)
    assert back.profile.tags == {"vip": False}
    # had the link kept the state before the lost write, nothing would be sent
    stale = R.decide(RULES, rec(), Link("p1", None, created.state))
    assert stale.profile.consents == () and stale.profile.tags == {}


def test_a_consent_in_flight_flips_only_against_the_value_sent():
    _, _, opted_in = written(rec({"Newsletter"}))
    out, lost, _ = written(rec(), opted_in)
    assert out.flipped == ("news|email",)  # counted when first sent
    again = R.decide(RULES, rec(), lost)  # the same opt-out again: no second flip
    assert again.profile.consents == (Consent("news", "email", False),)
    assert again.flipped == ()
    back = R.decide(RULES, rec({"Newsletter"}), lost)  # the other value: one flip
    assert back.profile.consents == (Consent("news", "email", True),)
    assert back.flipped == ("news|email",)


def test_a_first_opt_in_in_flight_then_an_opt_out_is_a_flip():
    """A new profile's opt-in whose answer was lost: the destination may hold it, so an
    opt-out after it is a flip the guard counts."""
    first, lost, _ = written(rec({"Newsletter"}))
    assert first.flipped == () and not first.known
    out = R.decide(RULES, rec(), lost)
    assert out.profile.consents == (Consent("news", "email", False),)
    assert out.flipped == ("news|email",)


def test_an_opt_out_in_flight_counts_as_written_by_syncd():
    _, _, opted_in = written(rec({"Newsletter"}))
    out, lost, answered = written(rec(), opted_in)
    assert lost.state["w"] == ["news|email"] and answered.state["w"] == ["news|email"]
    _, lost_in, answered_in = written(rec({"Newsletter"}), answered)
    assert lost_in.state["w"] == ["news|email"]  # the opt-out may still be there
    assert "w" not in answered_in.state


def test_a_held_flip_stays_in_flight():
    """The guard holds an opt-out of a consent whose opt-in was in flight: not sent, and
    still in flight after the write, so that it is sent at the next evaluation whatever it
    is then."""
    _, _, created = written(rec())
    _, lost, _ = written(rec({"Newsletter"}), created)
    out = R.decide(RULES, rec(), lost)
    held = R.hold_consents(out)
    assert held.profile.consents == () and held.digest is None
    assert held.state["c"] == {"news|email": True}
    assert in_flight_keys(held.state)[0] == {"news|email"}
    assert in_flight_keys(before_answer(held))[0] == {"news|email"}
    same = R.decide(RULES, rec({"Newsletter"}), Link("p1", None, held.state))
    assert same.profile.consents == (Consent("news", "email", True),) and not same.flipped


def test_a_held_flip_not_in_flight_keeps_the_state_last_written():
    _, _, opted_in = written(rec({"Newsletter"}))
    held = R.hold_consents(R.decide(RULES, rec(), opted_in))
    assert held.state["c"] == {"news|email": True}
    assert in_flight_keys(held.state) == (set(), set())
