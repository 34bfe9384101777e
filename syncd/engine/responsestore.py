"""The tables of response data and automation tasks in the state database (a mixin of
:class:`syncd.engine.store.Store`):

- ``response_events``: every engagement event syncd wrote to (or is writing to) a CRM, by its
  dedupe key ``(correlation_id, type, profile, time)``: ``sending`` is committed before the
  write, ``written`` / ``skipped`` after it. A repeated export row, a retried run or a run after
  a SIGKILL finds it here and writes nothing again; a ``sending`` one is looked up in the CRM
  first (its write may have been applied). Pruned once older than the export can repeat it.
- ``tasks``: every automation call, by its idempotency key, committed before it is answered:
  ``pending`` (stored, not yet created), ``created`` (with the task id), ``rejected`` (a bad
  call: unknown contact or employee, with the reason), ``failed`` (retryable).
- ``run_counts``: counts of a run by name (``email_opened`` ...), for ``syncd runs show``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

MIGRATION = """
CREATE TABLE response_events (
    integration TEXT NOT NULL,
    dedupe TEXT NOT NULL,
    record_id TEXT NOT NULL,
    type TEXT NOT NULL,
    at TEXT NOT NULL,
    state TEXT NOT NULL,
    run_id INTEGER,
    updated_at REAL NOT NULL,
    PRIMARY KEY (integration, dedupe)
) WITHOUT ROWID;
CREATE INDEX response_events_at ON response_events (integration, at);
CREATE TABLE tasks (
    integration TEXT NOT NULL,
    key TEXT NOT NULL,
    record_id TEXT NOT NULL,
    status TEXT NOT NULL,
    task_id TEXT,
    reason TEXT,
    call TEXT,
    received_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (integration, key)
) WITHOUT ROWID;
CREATE INDEX tasks_received ON tasks (integration, received_at);
CREATE TABLE run_counts (
    run_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (run_id, name)
) WITHOUT ROWID;
"""

_CHUNK = 500


class ResponseTables:
    """Needs ``_tx`` and ``_read`` of :class:`syncd.engine.store.Store`."""

    # -- response events -----------------------------------------------------------------------

    def response_states(self, integration: str, dedupes: Sequence[str]) -> dict[str, str]:
        """``{dedupe: state}`` of the given events syncd has seen."""
        out: dict[str, str] = {}
        for i in range(0, len(dedupes), _CHUNK):
            chunk = list(dedupes[i:i + _CHUNK])
            marks = ",".join("?" * len(chunk))
            for row in self._read(  # type: ignore[attr-defined]
                    f"SELECT dedupe, state FROM response_events WHERE integration=? AND "
                    f"dedupe IN ({marks})", (integration, *chunk)):
                out[row[0]] = row[1]
        return out

    def mark_responses(self, integration: str, rows: Iterable[tuple[str, str, str, str]],
                       state: str, run_id: int | None) -> None:
        """``rows`` of ``(dedupe, record_id, type, at)`` are now in ``state``."""
        now = time.time()
        with self._tx() as conn:  # type: ignore[attr-defined]
            conn.executemany(
                "INSERT INTO response_events (integration, dedupe, record_id, type, at, state, "
                "run_id, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(integration, dedupe) DO UPDATE SET state=excluded.state, "
                "run_id=excluded.run_id, updated_at=excluded.updated_at",
                [(integration, d, r, t, a, state, run_id, now) for d, r, t, a in rows])

    def response_count(self, integration: str, state: str | None = None) -> int:
        if state is None:
            rows = self._read("SELECT count(*) FROM response_events WHERE integration=?",  # type: ignore[attr-defined]
                              (integration,))
        else:
            rows = self._read("SELECT count(*) FROM response_events WHERE integration=? AND "  # type: ignore[attr-defined]
                              "state=?", (integration, state))
        return int(rows[0][0])

    def prune_responses(self, integration: str, older_than: str) -> int:
        """Forget written events that happened before ``older_than`` (ISO): an export that
        starts after it cannot repeat them."""
        with self._tx() as conn:  # type: ignore[attr-defined]
            cur = conn.execute("DELETE FROM response_events WHERE integration=? AND at<? AND "
                               "state!='sending'", (integration, older_than))
            return cur.rowcount

    # -- tasks -----------------------------------------------------------------------------------

    def task(self, integration: str, key: str) -> dict[str, Any] | None:
        rows = self._read("SELECT * FROM tasks WHERE integration=? AND key=?",  # type: ignore[attr-defined]
                          (integration, key))
        if not rows:
            return None
        out = dict(rows[0])
        out["call"] = json.loads(out["call"]) if out.get("call") else {}
        return out

    def put_task(self, integration: str, key: str, record_id: str, call: Mapping[str, Any]
                 ) -> bool:
        """Store a call before it is acted on; False when its key is already stored."""
        now = time.time()
        with self._tx() as conn:  # type: ignore[attr-defined]
            cur = conn.execute(
                "INSERT INTO tasks (integration, key, record_id, status, call, received_at, "
                "updated_at) VALUES (?, ?, ?, 'pending', ?, ?, ?) ON CONFLICT DO NOTHING",
                (integration, key, record_id, json.dumps(dict(call), sort_keys=True), now, now))
            return cur.rowcount == 1

    def set_task(self, integration: str, key: str, status: str, *, task_id: str | None = None,
                 reason: str | None = None) -> None:
        with self._tx() as conn:  # type: ignore[attr-defined]
            conn.execute("UPDATE tasks SET status=?, task_id=coalesce(?, task_id), reason=?, "
                         "updated_at=? WHERE integration=? AND key=?",
                         (status, task_id, reason, time.time(), integration, key))

    def tasks(self, integration: str | None = None, status: str | None = None,
              limit: int = 100) -> list[dict[str, Any]]:
        where, args = [], []
        if integration:
            where.append("integration=?")
            args.append(integration)
        if status:
            where.append("status=?")
            args.append(status)
        sql = "SELECT integration, key, record_id, status, task_id, reason, received_at " \
              "FROM tasks" + (f" WHERE {' AND '.join(where)}" if where else "") + \
              " ORDER BY received_at DESC LIMIT ?"
        return [dict(r) for r in self._read(sql, (*args, limit))]  # type: ignore[attr-defined]

    # -- counts per run ------------------------------------------------------------------------

    def count_run(self, run_id: int, counts: Mapping[str, int]) -> None:
        """Add ``counts`` to the run's named counts."""
        rows = [(run_id, k, int(v)) for k, v in counts.items() if v]
        if not rows:
            return
        with self._tx() as conn:  # type: ignore[attr-defined]
            conn.executemany("INSERT INTO run_counts (run_id, name, n) VALUES (?, ?, ?) "
                             "ON CONFLICT(run_id, name) DO UPDATE SET n=n+excluded.n", rows)

    def run_counts(self, run_id: int) -> dict[str, int]:
        return {r[0]: int(r[1]) for r in self._read(  # type: ignore[attr-defined]
            "SELECT name, n FROM run_counts WHERE run_id=? ORDER BY name", (run_id,))}
