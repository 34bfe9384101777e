"""The stop-and-confirm guard's decisions as pure functions: which changes it counts, what
goes of a batch once some are admitted, and why it holds."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from syncd.engine import rules as R
from syncd.engine.guard import held_out, hold_reason, sensitive
from syncd.records import Consent, Profile

NEWS = Consent("news", "email", False)


def write(key, flipped=()):
    consents = (NEWS,) if flipped else ()
    return R.Write(Profile(key, f"{key}@x.nl", consents=consents), f"d-{key}", known=True,
                   state={"c": {"news|email": False}}, flipped=flipped)


def test_the_guard_counts_consent_flips_by_profile_and_deletes_by_record():
    writes = [write("a", ("news|email",)), write("b")]
    deletes = [R.Delete("k1", R.UNMATCHED, "r1"), R.Delete("k2", R.DELETED)]
    assert sensitive(writes, deletes) == [("consent", "a"), ("delete", "r1"), ("delete", "k2")]


def test_changes_not_admitted_are_held_and_the_rest_goes():
    writes = [write("a", ("news|email",)), write("b"), write("c", ("news|email",))]
    deletes = [R.Delete("k1", R.UNMATCHED, "r1"), R.Delete("k2", R.DELETED, "r2")]
    out_writes, out_deletes, held = held_out(writes, deletes,
                                             {("consent", "c"), ("delete", "r2")})
    assert [w.profile.key for w in out_writes] == ["a", "b", "c"]  # every write goes
    assert out_writes[0] == R.hold_consents(writes[0])  # without its flip
    assert out_writes[0].profile.consents == () and out_writes[0].digest is None
    assert out_writes[1:] == writes[1:]
    assert out_deletes == [deletes[1]]
    assert held == [("a", "consent changes news|email"), ("r1", "delete (" + R.UNMATCHED + ")")]


def test_the_reason_names_the_share_the_limit_the_window_and_the_confirm():
    reason = hold_reason(0.1, 1000, 100, 86400, "main")
    assert reason.startswith("more than 10% of 1000 profiles (limit 100)")
    assert "within 24 h" in reason and "`syncd confirm main`" in reason


@given(st.lists(st.booleans(), max_size=15), st.lists(st.booleans(), max_size=15),
       st.data())
def test_nothing_sensitive_goes_without_admission_and_nothing_is_lost(flips, has_record,
                                                                      data):
    writes = [write(f"w{n}", ("news|email",) if f else ()) for n, f in enumerate(flips)]
    deletes = [R.Delete(f"k{n}", R.DELETED, f"r{n}" if r else "")
               for n, r in enumerate(has_record)]
    items = sensitive(writes, deletes)
    admitted = set(data.draw(st.lists(st.sampled_from(items), unique=True))) if items \
        else set()
    out_writes, out_deletes, held = held_out(writes, deletes, admitted)
    assert [w.profile.key for w in out_writes] == [w.profile.key for w in writes]
    # what goes is exactly what was admitted; everything else sensitive is held
    assert set(sensitive(out_writes, out_deletes)) == admitted
    assert len(held) == len(items) - len(admitted)
    assert all(w.digest is None for w in out_writes
               if ("consent", w.profile.key) in set(items) - admitted)
