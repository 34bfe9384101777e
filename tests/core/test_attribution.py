"""Failure attribution as pure decisions: which answer belongs to which record, which event
takes which failure, and which failed events become dead letters."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from syncd.config.model import Condition
from syncd.engine import attribution as A
from syncd.engine import rules as R
from syncd.engine.guard import held_error
from syncd.engine.store import InboxItem
from syncd.records import Event, Profile, Record, WriteResult


def write(key, known=False, overridden=()):
    return R.Write(Profile(key, f"{key}@x.nl"), f"d-{key}", known=known, state={"t": {}},
                   optouts_overridden=overridden)


def item(n, record_id, attempts=0):
    return InboxItem(n, "i", "src", Event(record_id), 0.0, "pending", attempts, None)


def test_each_answer_is_its_records_outcome():
    writes = [write("a"), write("b", known=True, overridden=(("news", "email"),)),
              write("c")]
    results = [WriteResult("a", "created", remote_id="A-1"), WriteResult("b", "updated"),
               WriteResult("c", "failed", reason="422 bad phone", retryable=False)]
    deletes = [R.Delete("x", R.UNMATCHED, "rx"), R.Delete("y", R.DELETED, "ry")]
    deleted = [WriteResult("x", "deleted"),
               WriteResult("y", "failed", reason=None, retryable=True)]
    out = A.answered(writes, results, deletes, deleted)
    assert out.counts == {"created": 1, "updated": 1, "failed": 2, "deleted": 1}
    assert out.errors == [("c", "422 bad phone", False), ("y", "delete failed", True)]
    # the key the destination gave is the link's; a failed write saves no link
    assert out.links == [("a", "A-1", "d-a", {"t": {}}), ("b", "b", "d-b", {"t": {}})]
    assert out.gone == ["x"]
    assert out.overridden == [("b", "news", "email")]


def test_a_failed_write_without_a_reason_still_names_a_reason():
    out = A.answered([write("a")], [WriteResult("a", "failed")])
    assert out.errors == [("a", "failed", False)] and out.links == []


outcomes = st.sampled_from(["created", "updated", "unchanged", "failed"])


@given(st.lists(st.tuples(outcomes, st.booleans()), max_size=30),
       st.lists(st.sampled_from(["deleted", "failed"]), max_size=10))
def test_every_write_and_delete_is_counted_once_and_failures_are_errors(writes, deletes):
    ws = [write(f"w{n}") for n in range(len(writes))]
    rs = [WriteResult(f"w{n}", o, retryable=r) for n, (o, r) in enumerate(writes)]
    ds = [R.Delete(f"d{n}", R.UNMATCHED) for n in range(len(deletes))]
    drs = [WriteResult(f"d{n}", o) for n, o in enumerate(deletes)]
    out = A.answered(ws, rs, ds, drs)
    assert sum(out.counts.values()) == len(ws) + len(ds)
    failed = [w.profile.key for w, r in zip(ws, rs, strict=True) if r.outcome == "failed"] + \
        [d.key for d, r in zip(ds, drs, strict=True) if r.outcome == "failed"]
    assert [key for key, _, _ in out.errors] == failed  # in input order
    linked = {key for key, *_ in out.links} | set(out.gone)
    assert linked.isdisjoint({key for key, _, _ in out.errors})
    assert linked | {key for key, _, _ in out.errors} == \
        {w.profile.key for w in ws} | {d.key for d in ds}


def test_a_delete_stands_only_when_the_direct_read_confirms_it():
    rules = R.Rules(conditions=(Condition("Type", "A"),), delete_unmatched=True)
    gone = R.Delete("k", R.DELETED, "r1")
    assert A.delete_check(rules, gone, None) is gone  # "not found"
    assert A.delete_check(rules, gone, Record("r1", fields={"Type": "B"})) is gone
    assert A.delete_check(rules, gone, Record("r1", fields={"Type": "A"})) is None  # kept
    assert A.delete_check(rules, gone, Record("r1", error="labels missing")) == (
        "r1", "not deleted: the direct read of r1 was not whole: labels missing", True)
    assert A.delete_unread(gone, TimeoutError("slow")) == (
        "r1", "not deleted: reading r1 directly to confirm the delete failed: "
              "TimeoutError: slow", True)


def test_events_take_their_records_failure_and_untied_events_the_first():
    items = [item(1, "a"), item(2, "b"), item(3, "rel-7"), item(4, "a")]
    errors = [("b", "422", False), ("c", "503", True)]
    done, by_problem = A.events_answered(items, {"a", "b", "c"}, errors)
    assert done == [1, 4]
    assert by_problem == {("422", False): [items[1], items[2]]}  # rel-7: the first failure
    done, by_problem = A.events_answered(items, {"a", "b"}, [])
    assert done == [1, 2, 3, 4] and by_problem == {}


@given(st.lists(st.sampled_from("abcdef"), max_size=20),
       st.sets(st.sampled_from("abcdef")),
       st.lists(st.tuples(st.sampled_from("abcdef"), st.sampled_from(["x", "y"]),
                          st.booleans()), max_size=6))
def test_every_event_is_done_or_failed_exactly_once(records, read, errors):
    items = [item(n, r) for n, r in enumerate(records)]
    done, by_problem = A.events_answered(items, read, errors)
    failed = [i.id for group in by_problem.values() for i in group]
    assert sorted(done + failed) == list(range(len(items)))
    erred = {key: (reason, retryable) for key, reason, retryable in errors}
    for group_problem, group in by_problem.items():
        for i in group:
            record = i.event.record_id
            assert group_problem == erred.get(record, next(iter(erred.values())))
    for i in items:
        if i.event.record_id in read and i.event.record_id not in erred:
            assert i.id in done  # a record read and written is never retried
        if errors and i.event.record_id not in read:
            assert i.id not in done  # an event tied to no record read is never lost
    if not errors:
        assert failed == []


def test_a_failure_retrying_cannot_fix_is_a_dead_letter_at_once():
    items = [item(1, "a", attempts=0), item(2, "b", attempts=4)]
    assert A.dead_or_retry(items, 5, retryable=False) == ([1, 2], [])
    assert A.dead_or_retry(items, 5, retryable=True) == ([2], [(items[0], 1.0)])


@given(st.lists(st.integers(min_value=0, max_value=20), max_size=20),
       st.integers(min_value=1, max_value=10), st.booleans())
def test_failed_events_are_dead_or_retried_never_both(attempts, max_attempts, retryable):
    items = [item(n, "r", attempts=a) for n, a in enumerate(attempts)]
    dead, retry = A.dead_or_retry(items, max_attempts, retryable)
    assert sorted(dead + [i.id for i, _ in retry]) == list(range(len(items)))
    assert all(R.RETRY_MAX_DELAY >= delay >= 1.0 for _, delay in retry)
    assert all(i.attempts + 1 < max_attempts for i, _ in retry)
    assert retryable or not retry


def test_a_full_sync_that_held_changes_needs_a_confirm_naming_the_command():
    assert held_error(0, 0.1, "main") is None
    error = held_error(12, 0.1, "main")
    assert error is not None and error.startswith("12 consent changes or deletes were held")
    assert "more than 10% of the profiles" in error and "`syncd confirm main`" in error
