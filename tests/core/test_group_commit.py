"""Group commit of the inbox: callers that arrive together share one commit, none returns
before its commit, an error reaches every caller of its batch; a lone caller commits at once."""

from __future__ import annotations

import threading

import pytest

from syncd.engine.groupcommit import GroupCommit
from syncd.engine.store import Store, StoreError
from syncd.records import Event
from syncd.testing import wait_for


class Recorder:
    """A commit function that records its batches and can be held or made to fail."""

    def __init__(self):
        self.batches: list[list[str]] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        self.fail_on: int | None = None

    def __call__(self, items):
        self.batches.append(list(items))
        self.entered.set()
        assert self.gate.wait(10)
        if self.fail_on == len(self.batches):
            raise RuntimeError("disk I/O error")
        return [f"ok:{item}" for item in items]


def submit_in_threads(group, items, results):
    def run(item):
        try:
            results[item] = group.submit(item)
        except Exception as exc:
            results[item] = exc

    threads = [threading.Thread(target=run, args=(item,)) for item in items]
    for t in threads:
        t.start()
    return threads


def test_callers_that_arrive_during_a_commit_share_the_next_one():
    commit = Recorder()
    group = GroupCommit(commit)
    commit.gate.clear()
    results: dict[str, object] = {}
    first = submit_in_threads(group, ["a"], results)
    assert commit.entered.wait(10)
    rest = submit_in_threads(group, ["b", "c", "d", "e", "f"], results)
    assert wait_for(lambda: len(group._queue) == 5, timeout=10)
    assert results == {}  # nobody is answered before its transaction committed
    commit.gate.set()
    for t in first + rest:
        t.join(10)
    assert results == {k: f"ok:{k}" for k in "abcdef"}
    assert [sorted(b) for b in commit.batches] == [["a"], ["b", "c", "d", "e", "f"]]
    assert group.batches == [1, 5]


def test_a_failed_commit_fails_every_caller_of_its_batch_only():
    commit = Recorder()
    commit.fail_on = 2
    group = GroupCommit(commit, wrap=lambda e: StoreError(str(e)))
    commit.gate.clear()
    results: dict[str, object] = {}
    first = submit_in_threads(group, ["a"], results)
    assert commit.entered.wait(10)
    rest = submit_in_threads(group, ["b", "c", "d"], results)
    assert wait_for(lambda: len(group._queue) == 3, timeout=10)
    commit.gate.set()
    for t in first + rest:
        t.join(10)
    assert results["a"] == "ok:a"
    errors = [results[k] for k in "bcd"]
    assert all(isinstance(e, Exception) and "disk I/O error" in str(e) for e in errors)
    assert len({id(e) for e in errors}) == 3  # no exception object raised in two threads
    assert group.submit("z") == "ok:z"  # and the next commit works


def test_a_lone_caller_commits_at_once():
    commit = Recorder()
    group = GroupCommit(commit)
    assert [group.submit(i) for i in range(3)] == ["ok:0", "ok:1", "ok:2"]
    assert commit.batches == [[0], [1], [2]]


@pytest.mark.parametrize("durability, level", [("full", 2), ("normal", 1)])
def test_store_durability_sets_synchronous(tmp_path, durability, level):
    store = Store(str(tmp_path / "d.db"), durability=durability)
    assert store._conn().execute("PRAGMA synchronous").fetchone()[0] == level
    assert store._conn().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_concurrent_enqueues_get_their_own_ids_in_shared_commits(tmp_path):
    store = Store(str(tmp_path / "g.db"), durability="full")
    got: dict[int, list[int]] = {}

    def run(n):
        for i in range(50):
            ids = store.enqueue([("i", "c", Event(f"{n}-{i}-a")), ("j", "c", Event(f"{n}-{i}-b"))])
            got.setdefault(n, []).extend(ids)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    all_ids = [i for ids in got.values() for i in ids]
    assert len(all_ids) == len(set(all_ids)) == 800
    rows = store._read("SELECT id, integration, record_id FROM inbox")
    by_id = {r["id"]: (r["integration"], r["record_id"]) for r in rows}
    for n, ids in got.items():  # each caller's ids are its own events, in order
        for k, pair in enumerate(zip(ids[0::2], ids[1::2], strict=True)):
            assert by_id[pair[0]] == ("i", f"{n}-{k}-a")
            assert by_id[pair[1]] == ("j", f"{n}-{k}-b")
    store.close()
