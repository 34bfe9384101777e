"""syncd's state: one SQLite database (WAL) in the state directory.

- ``inbox``: real-time events, written by the receiver *before* it answers 2xx, applied by
  the coordinators in order, kept as dead letters when they fail for good;
- ``links``: which destination profile a source record became, and the digest of what was
  last written (so an unchanged record is not written again);
- ``cursors``: named positions (daily-job windows, partners' change cursors);
- ``runs`` and ``run_errors``: the history of full syncs and jobs, with a reason per failed
  record;
- the stop-and-confirm guard's count and holds (:mod:`syncd.engine.guardstore`).

Every thread gets its own connection. Each write is one transaction, in WAL mode;
``durability = "full"`` (``synchronous=FULL``, the daemon's default) survives power loss,
``"normal"`` a killed process. Webhooks stored together share one commit (group commit, see
:mod:`syncd.engine.groupcommit`).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from syncd.engine.groupcommit import GroupCommit
from syncd.engine.guardstore import MIGRATION as GUARD_MIGRATION
from syncd.engine.guardstore import GuardTables
from syncd.engine.linkstore import LinkTables
from syncd.engine.responsestore import MIGRATION as RESPONSES_MIGRATION
from syncd.engine.responsestore import ResponseTables
from syncd.engine.runstore import COUNTERS as COUNTERS
from syncd.engine.runstore import RunTables
from syncd.records import Event

SCHEMA_VERSION = 4

_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE inbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        integration TEXT NOT NULL,
        connection TEXT NOT NULL,
        record_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        entity TEXT,
        data TEXT,
        received_at REAL NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL DEFAULT 0,
        last_error TEXT,
        done_at REAL
    );
    CREATE INDEX inbox_pending ON inbox (integration, status, id);
    CREATE TABLE links (
        integration TEXT NOT NULL,
        source_id TEXT NOT NULL,
        dest_key TEXT NOT NULL,
        digest TEXT,
        updated_at REAL NOT NULL,
        PRIMARY KEY (integration, source_id)
    ) WITHOUT ROWID;
    CREATE TABLE cursors (
        integration TEXT NOT NULL,
        name TEXT NOT NULL,
        value TEXT,
        updated_at REAL NOT NULL,
        PRIMARY KEY (integration, name)
    ) WITHOUT ROWID;
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        integration TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at REAL NOT NULL,
        ended_at REAL,
        total INTEGER,
        processed INTEGER NOT NULL DEFAULT 0,
        created INTEGER NOT NULL DEFAULT 0,
        updated INTEGER NOT NULL DEFAULT 0,
        unchanged INTEGER NOT NULL DEFAULT 0,
        skipped INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        cursor TEXT,
        error TEXT,
        resumed_from INTEGER
    );
    CREATE INDEX runs_integration ON runs (integration, id);
    CREATE TABLE run_errors (
        run_id INTEGER NOT NULL,
        record_id TEXT NOT NULL,
        reason TEXT NOT NULL,
        retryable INTEGER NOT NULL DEFAULT 0,
        at REAL NOT NULL
    );
    CREATE INDEX run_errors_run ON run_errors (run_id);
    """,
    2: """
    ALTER TABLE links ADD COLUMN state TEXT;
    CREATE TABLE optouts (
        integration TEXT NOT NULL,
        key TEXT NOT NULL,
        topic TEXT NOT NULL,
        channel TEXT NOT NULL,
        at TEXT NOT NULL,
        written_back INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (integration, key, topic, channel)
    ) WITHOUT ROWID;
    """,
    3: GUARD_MIGRATION,
    4: RESPONSES_MIGRATION,
}



@dataclass(frozen=True)
class InboxItem:
    id: int
    integration: str
    connection: str
    event: Event
    received_at: float
    status: str
    attempts: int
    last_error: str | None


class StoreError(Exception):
    """The state database could not be read or written."""


class Store(LinkTables, RunTables, GuardTables, ResponseTables):
    """Thread-safe access to the state database at ``path``."""

    def __init__(self, path: str, *, durability: str = "normal", timeout: float = 5.0):
        self.path = path
        self.durability = durability
        self.timeout = timeout
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._inbox_commit = GroupCommit(self._enqueue_batches, wrap=_as_store_error)
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self._migrate()

    # -- connections -----------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            sync = "FULL" if self.durability == "full" else "NORMAL"
            conn.execute(f"PRAGMA synchronous={sync}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _tx(self):
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise StoreError(str(exc)) from exc
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            return self._conn().execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
        self._local = threading.local()

    def _migrate(self) -> None:
        conn = self._conn()
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this syncd "
                f"({SCHEMA_VERSION}); upgrade syncd or use another state_dir"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _MIGRATIONS[target].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (str(target),))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def schema_version(self) -> int:
        row = self._read("SELECT value FROM meta WHERE key='schema_version'")
        return int(row[0][0]) if row else 0

    # -- inbox -----------------------------------------------------------------------------

    def enqueue(self, items: Iterable[tuple[str, str, Event]]) -> list[int]:
        """Store events for ``(integration, connection, event)`` and return their ids once
        they are committed. Calls from several threads at once share one transaction (group
        commit); each returns when that transaction has committed. Raises
        :class:`StoreError` when they could not be stored."""
        return self._inbox_commit.submit(list(items))

    def _enqueue_batches(self, batches: Sequence[list[tuple[str, str, Event]]]
                         ) -> list[list[int]]:
        now = time.time()
        out = []
        with self._tx() as conn:
            for items in batches:
                ids = []
                for integration, connection, event in items:
                    cur = conn.execute(
                        "INSERT INTO inbox (integration, connection, record_id, kind, entity,"
                        " data, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (integration, connection, event.record_id, event.kind, event.entity,
                         json.dumps(event.data) if event.data else None, now),
                    )
                    ids.append(cur.lastrowid)
                out.append(ids)
        return out

    def pending(self, integration: str, limit: int = 500, now: float | None = None
                ) -> list[InboxItem]:
        """Pending events due now, oldest first."""
        now = time.time() if now is None else now
        rows = self._read(
            "SELECT * FROM inbox WHERE integration=? AND status='pending' AND next_attempt_at<=?"
            " ORDER BY id LIMIT ?", (integration, now, limit))
        return [_item(r) for r in rows]

    def pending_count(self, integration: str | None = None) -> int:
        if integration is None:
            rows = self._read("SELECT count(*) FROM inbox WHERE status='pending'")
        else:
            rows = self._read("SELECT count(*) FROM inbox WHERE integration=? AND status='pending'",
                              (integration,))
        return rows[0][0]

    def next_due(self, integration: str) -> float | None:
        rows = self._read("SELECT min(next_attempt_at) FROM inbox WHERE integration=? AND "
                          "status='pending'", (integration,))
        return rows[0][0]

    def mark_done(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        now = time.time()
        with self._tx() as conn:
            conn.executemany("UPDATE inbox SET status='done', done_at=? WHERE id=?",
                             [(now, i) for i in ids])

    def mark_retry(self, ids: Sequence[int], error: str, delay: float) -> None:
        when = time.time() + delay
        with self._tx() as conn:
            conn.executemany(
                "UPDATE inbox SET attempts=attempts+1, last_error=?, next_attempt_at=? WHERE id=?",
                [(error, when, i) for i in ids])

    def mark_dead(self, ids: Sequence[int], error: str) -> None:
        with self._tx() as conn:
            conn.executemany(
                "UPDATE inbox SET status='dead', attempts=attempts+1, last_error=?, done_at=?"
                " WHERE id=?", [(error, time.time(), i) for i in ids])

    def dead_letters(self, integration: str | None = None, limit: int = 1000) -> list[InboxItem]:
        if integration:
            rows = self._read("SELECT * FROM inbox WHERE status='dead' AND integration=? "
                              "ORDER BY id LIMIT ?", (integration, limit))
        else:
            rows = self._read("SELECT * FROM inbox WHERE status='dead' ORDER BY id LIMIT ?",
                              (limit,))
        return [_item(r) for r in rows]

    def unapplied(self, integration: str | None = None, limit: int = 1000) -> list[InboxItem]:
        """Events not applied yet: pending (perhaps waiting to be tried again) and dead."""
        where = "status IN ('pending', 'dead')" + (" AND integration=?" if integration else "")
        args = (integration, limit) if integration else (limit,)
        return [_item(r) for r in self._read(
            f"SELECT * FROM inbox WHERE {where} ORDER BY id LIMIT ?", args)]

    def retry_dead(self, ids: Sequence[int] | None = None, integration: str | None = None) -> int:
        """Put dead letters back in the queue (all of them, or ``ids``); returns how many."""
        with self._tx() as conn:
            if ids:
                cur = conn.executemany(
                    "UPDATE inbox SET status='pending', attempts=0, next_attempt_at=0 "
                    "WHERE id=? AND status='dead'", [(i,) for i in ids])
            elif integration:
                cur = conn.execute("UPDATE inbox SET status='pending', attempts=0, "
                                   "next_attempt_at=0 WHERE status='dead' AND integration=?",
                                   (integration,))
            else:
                cur = conn.execute("UPDATE inbox SET status='pending', attempts=0, "
                                   "next_attempt_at=0 WHERE status='dead'")
            return cur.rowcount

    def prune_done(self, older_than: float) -> int:
        with self._tx() as conn:
            cur = conn.execute("DELETE FROM inbox WHERE status='done' AND done_at<?",
                               (time.time() - older_than,))
            return cur.rowcount

    def oldest_unapplied(self) -> dict[str, float]:
        """Per integration, when its oldest event not applied yet arrived."""
        return {r[0]: r[1] for r in self._read(
            "SELECT integration, min(received_at) FROM inbox WHERE status != 'done' "
            "GROUP BY integration")}

    def inbox_counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for row in self._read("SELECT integration, status, count(*) FROM inbox "
                              "GROUP BY integration, status"):
            out.setdefault(row[0], {})[row[1]] = row[2]
        return out

    # -- links -----------------------------------------------------------------------------


def _item(row: sqlite3.Row) -> InboxItem:
    data = json.loads(row["data"]) if row["data"] else {}
    return InboxItem(
        id=row["id"],
        integration=row["integration"],
        connection=row["connection"],
        event=Event(record_id=row["record_id"], kind=row["kind"], entity=row["entity"], data=data),
        received_at=row["received_at"],
        status=row["status"],
        attempts=row["attempts"],
        last_error=row["last_error"],
    )


def _as_store_error(exc: BaseException) -> BaseException:
    return StoreError(str(exc)) if isinstance(exc, Exception) else exc
