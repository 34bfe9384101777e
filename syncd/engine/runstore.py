"""The runs of the state database (a mixin of :class:`syncd.engine.store.Store`, which provides
``_tx`` and ``_read``): full syncs, daily creations, imports and their per-record errors."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from syncd import metrics

COUNTERS = ("processed", "created", "updated", "unchanged", "skipped", "failed")


class RunTables:
    #: Provided by :class:`syncd.engine.store.Store`.
    _tx: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _read: Callable[..., list[sqlite3.Row]]

    def start_run(self, integration: str, kind: str, *, resumed_from: int | None = None,
                  cursor: str | None = None, total: int | None = None) -> int:
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT INTO runs (integration, kind, status, started_at, resumed_from, cursor,"
                " total) VALUES (?, ?, 'running', ?, ?, ?, ?)",
                (integration, kind, time.time(), resumed_from, cursor, total))
            return int(cur.lastrowid or 0)

    def progress_run(self, run_id: int, counts: dict[str, int], *, cursor: str | None = None,
                     total: int | None = None,
                     errors: Sequence[tuple[str, str, bool]] = ()) -> None:
        """Add ``counts`` to the run's counters, move its cursor and record errors, at once."""
        sets = ", ".join(f"{k}={k}+?" for k in COUNTERS)
        args = [int(counts.get(k, 0)) for k in COUNTERS]
        now = time.time()
        with self._tx() as conn:
            run = conn.execute(f"UPDATE runs SET {sets}, cursor=coalesce(?, cursor), "
                               f"total=coalesce(?, total) WHERE id=? RETURNING integration, kind",
                               (*args, cursor, total, run_id)).fetchone()
            if errors:
                conn.executemany(
                    "INSERT INTO run_errors (run_id, record_id, reason, retryable, at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [(run_id, rid, reason, int(bool(retry)), now) for rid, reason, retry in errors])
        metrics.run_progress(run and dict(run), counts)

    def finish_run(self, run_id: int, status: str, error: str | None = None) -> None:
        now = time.time()
        with self._tx() as conn:
            run = conn.execute("UPDATE runs SET status=?, ended_at=?, error=? WHERE id=? "
                               "RETURNING integration, kind, started_at",
                               (status, now, error, run_id)).fetchone()
        metrics.run_finished(run and dict(run), status, now)

    def drop_run(self, run_id: int) -> None:
        """Forget a run not worth keeping (a link's quiet round), with its errors."""
        with self._tx() as conn:
            conn.execute("DELETE FROM run_errors WHERE run_id=?", (run_id,))
            conn.execute("DELETE FROM runs WHERE id=?", (run_id,))

    def interrupt_running(self) -> list[dict[str, Any]]:
        """Mark runs left 'running' by a stopped process as 'interrupted'; return them."""
        with self._tx() as conn:
            rows = conn.execute("SELECT * FROM runs WHERE status='running'").fetchall()
            conn.execute("UPDATE runs SET status='interrupted', ended_at=? WHERE status='running'",
                         (time.time(),))
        return [dict(r) for r in rows]

    def latest_run(self, integration: str, kind: str) -> dict[str, Any] | None:
        rows = self._read("SELECT * FROM runs WHERE integration=? AND kind=? ORDER BY id DESC "
                          "LIMIT 1", (integration, kind))
        return dict(rows[0]) if rows else None

    def run(self, run_id: int) -> dict[str, Any] | None:
        rows = self._read("SELECT * FROM runs WHERE id=?", (run_id,))
        return dict(rows[0]) if rows else None

    def runs(self, integration: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        if integration:
            rows = self._read("SELECT * FROM runs WHERE integration=? ORDER BY id DESC LIMIT ?",
                              (integration, limit))
        else:
            rows = self._read("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit,))
        return [dict(r) for r in rows]

    def run_errors(self, run_id: int, limit: int = 1000) -> list[dict[str, Any]]:
        rows = self._read("SELECT record_id, reason, retryable, at FROM run_errors WHERE run_id=?"
                          " ORDER BY rowid LIMIT ?", (run_id, limit))
        return [dict(r) for r in rows]
