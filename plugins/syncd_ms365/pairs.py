"""The link's state: per user, which Tribe relationship is which Outlook contact (the
connector id in syncd's state), the status of each field (what both sides last agreed on:
see :mod:`syncd.engine.twoway`), held merges, and the delta link and subscription of each mailbox.

One SQLite file per connection in the state directory (``ms365-{connection}.pairs.sqlite3``,
0600, ``synchronous=FULL``). A contact is created in two steps: the pair is written as
``creating`` *before* the Graph write, ``linked`` with the contact's id after it; a pair left
``creating`` by a crash is resolved by looking for the connector id in the mailbox first, so
no second contact is ever made.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS pairs (
    user TEXT NOT NULL, key TEXT NOT NULL, remote TEXT, state TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT '{}', held TEXT, updated REAL NOT NULL,
    PRIMARY KEY (user, key));
CREATE INDEX IF NOT EXISTS pairs_remote ON pairs (user, remote);
CREATE TABLE IF NOT EXISTS mailboxes (
    user TEXT PRIMARY KEY, folder TEXT, delta TEXT, subscription TEXT, expires TEXT,
    initial_done INTEGER NOT NULL DEFAULT 0);
"""


@dataclass
class Pair:
    user: str
    key: str
    remote: str | None
    state: str  # creating | linked | unlinked
    status: dict[str, Any]
    held: str | None


class Pairs:
    def __init__(self, path: str):
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        self.lock = threading.Lock()
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    @staticmethod
    def _pair(row) -> Pair | None:
        if row is None:
            return None
        return Pair(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5])

    def get(self, user: str, key: str) -> Pair | None:
        with self.lock:
            return self._pair(self.db.execute(
                "SELECT user, key, remote, state, status, held FROM pairs WHERE user=? AND "
                "key=?", (user, key)).fetchone())

    def by_remote(self, user: str, remote: str) -> Pair | None:
        with self.lock:
            return self._pair(self.db.execute(
                "SELECT user, key, remote, state, status, held FROM pairs WHERE user=? AND "
                "remote=?", (user, remote)).fetchone())

    def put(self, user: str, key: str, *, state: str, remote: str | None,
            status: dict[str, Any] | None = None, held: str | None = None) -> None:
        with self.lock:
            self.db.execute(
                "INSERT INTO pairs (user, key, remote, state, status, held, updated) VALUES "
                "(?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user, key) DO UPDATE SET remote=excluded."
                "remote, state=excluded.state, status=excluded.status, held=excluded.held, "
                "updated=excluded.updated",
                (user, key, remote, state, json.dumps(status or {}, sort_keys=True), held,
                 time.time()))

    def creating(self, user: str, keys: list[str]) -> None:
        """The intent, on disk before the contacts are created."""
        with self.lock:
            self.db.execute("BEGIN")
            for key in keys:
                self.db.execute(
                    "INSERT INTO pairs (user, key, remote, state, updated) VALUES (?, ?, "
                    "NULL, 'creating', ?) ON CONFLICT (user, key) DO UPDATE SET state="
                    "'creating', remote=NULL, status='{}', updated=excluded.updated",
                    (user, key, time.time()))
            self.db.execute("COMMIT")

    def held(self, user: str | None = None) -> list[Pair]:
        sql = "SELECT user, key, remote, state, status, held FROM pairs WHERE held IS NOT NULL"
        args: tuple = ()
        if user is not None:
            sql += " AND user=?"
            args = (user,)
        with self.lock:
            return [p for p in map(self._pair, self.db.execute(sql, args).fetchall()) if p]

    def counts(self, user: str) -> dict[str, int]:
        with self.lock:
            rows = self.db.execute("SELECT state, COUNT(*) FROM pairs WHERE user=? GROUP BY "
                                   "state", (user,)).fetchall()
        return dict(rows)

    def mailbox(self, user: str) -> dict[str, Any]:
        with self.lock:
            row = self.db.execute("SELECT folder, delta, subscription, expires, initial_done "
                                  "FROM mailboxes WHERE user=?", (user,)).fetchone()
        keys = ("folder", "delta", "subscription", "expires", "initial_done")
        return dict(zip(keys, row, strict=True)) if row else dict.fromkeys(keys)

    def user_of_subscription(self, sid: str) -> str | None:
        with self.lock:
            row = self.db.execute("SELECT user FROM mailboxes WHERE subscription=?",
                                  (sid,)).fetchone()
        return row[0] if row else None

    def set_mailbox(self, user: str, **values: Any) -> None:
        current = self.mailbox(user)
        current.update(values)
        with self.lock:
            self.db.execute(
                "INSERT OR REPLACE INTO mailboxes (user, folder, delta, subscription, expires,"
                " initial_done) VALUES (?, ?, ?, ?, ?, ?)",
                (user, current["folder"], current["delta"], current["subscription"],
                 current["expires"], int(current["initial_done"] or 0)))
