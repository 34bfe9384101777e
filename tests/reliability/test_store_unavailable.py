"""A locked database or a full disk while the daemon runs: the webhook gets 503 with
Retry-After, never a 2xx; once the store works again the same delivery gets 200 and is
applied, exactly once."""

from __future__ import annotations

import functools
import sqlite3
import threading
import time

import pytest
from reliability_support import signed_body, wait_for

import syncd.app.daemon
from syncd.engine.store import Store, StoreError

SHORT_TIMEOUT = 0.5


@pytest.fixture
def short_timeout_daemon(monkeypatch, start):
    """The daemon with its store's busy timeout cut from 5 s to 0.5 s (Daemon._start builds
    ``Store(path)`` with the default; the 5 s variant is test_the_real_busy_timeout...)."""
    monkeypatch.setattr(syncd.app.daemon, "Store", functools.partial(Store, timeout=SHORT_TIMEOUT))
    r = start()
    assert r.daemon.store.timeout == SHORT_TIMEOUT
    return r


class ExclusiveLock:
    """``BEGIN EXCLUSIVE`` on the daemon's database from a connection of our own, held until
    released."""

    def __init__(self, path: str):
        self.conn = sqlite3.connect(path, timeout=10, isolation_level=None,
                                    check_same_thread=False)
        self.conn.execute("BEGIN EXCLUSIVE")

    def rows_for(self, record_id: str) -> int:
        return self.conn.execute("SELECT count(*) FROM inbox WHERE record_id=?",
                                 (record_id,)).fetchone()[0]

    def release(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self.conn.close()


def inbox_count(db_path: str, record_id: str) -> int:
    conn = sqlite3.connect(db_path, timeout=10)
    try:
        return conn.execute("SELECT count(*) FROM inbox WHERE record_id=?",
                            (record_id,)).fetchone()[0]
    finally:
        conn.close()


def deliver_while_locked(r, record_id: str, value: str, timeout: float):
    """Post one signed delivery while the database is locked; return (response, seconds,
    body, headers)."""
    r.world.update(record_id, FirstName=value)
    body, headers = signed_body([record_id])
    lock = ExclusiveLock(r.db_path)
    try:
        started = time.monotonic()
        resp = r.post("crm", body, headers, timeout=timeout)
        took = time.monotonic() - started
        assert lock.rows_for(record_id) == 0  # nothing half-written behind the lock
    finally:
        lock.release()
    return resp, took, body, headers


def assert_refused_then_accepted(r, resp, body, headers, record_id, value):
    assert resp.status_code == 503, (resp.status_code, resp.text)
    assert resp.headers.get("Retry-After", "").isdigit(), resp.headers
    assert int(resp.headers["Retry-After"]) > 0
    assert inbox_count(r.db_path, record_id) == 0
    assert not r.applied(record_id, value)
    stats = r.daemon.receiver_app.stats()
    assert stats["accepted"] == 0 and stats["rejected"].get(503) == 1, stats

    # the sender retries the very same delivery once the store works again
    again = r.post("crm", body, headers, timeout=10)
    assert again.status_code == 200 and again.json() == {"accepted": 1}, again.text
    assert wait_for(lambda: r.applied(record_id, value))
    assert inbox_count(r.db_path, record_id) == 1
    # applied in the destination first, then marked done in the inbox (its own commit)
    assert wait_for(lambda: r.daemon.store.pending_count() == 0)


def test_a_locked_database_gets_503_and_the_retry_is_applied(short_timeout_daemon):
    r = short_timeout_daemon
    resp, took, body, headers = deliver_while_locked(r, "p02", "written after the lock",
                                                     timeout=SHORT_TIMEOUT + 10)
    assert took >= SHORT_TIMEOUT * 0.9  # it did wait for the lock, then gave up
    assert_refused_then_accepted(r, resp, body, headers, "p02", "written after the lock")


def test_a_lock_released_within_the_busy_timeout_costs_only_latency(short_timeout_daemon):
    r = short_timeout_daemon
    r.world.update("p03", FirstName="briefly locked")
    body, headers = signed_body(["p03"])
    lock = ExclusiveLock(r.db_path)
    threading.Timer(SHORT_TIMEOUT / 5, lock.release).start()
    resp = r.post("crm", body, headers, timeout=10)
    assert resp.status_code == 200, resp.text
    assert wait_for(lambda: r.applied("p03", "briefly locked"))


def test_the_real_busy_timeout_then_503(start):
    """The unpatched store (busy timeout 5 s): a sender waits about that long, then 503."""
    r = start()
    assert r.daemon.store.timeout == 5.0
    resp, took, body, headers = deliver_while_locked(r, "p04", "after a long lock", timeout=30)
    assert 4.5 <= took < 20, took
    assert_refused_then_accepted(r, resp, body, headers, "p04", "after a long lock")


@pytest.mark.parametrize("message", ["database or disk is full", "disk I/O error",
                                     "unable to open database file"])
def test_a_store_that_cannot_write_gets_503_and_the_retry_is_applied(running, monkeypatch,
                                                                     message):
    r = running
    r.world.update("p05", FirstName=message)
    body, headers = signed_body(["p05"])
    calls = []

    def failing_enqueue(items):
        calls.append(list(items))
        raise StoreError(message)

    monkeypatch.setattr(r.daemon.store, "enqueue", failing_enqueue)
    resp = r.post("crm", body, headers, timeout=10)
    assert len(calls) == 1 and [e.record_id for _, _, e in calls[0]] == ["p05"]
    monkeypatch.undo()
    assert_refused_then_accepted(r, resp, body, headers, "p05", message)
