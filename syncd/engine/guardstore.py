"""The stop-and-confirm guard's tables in the state database (a mixin of
:class:`syncd.engine.store.Store`), so that its count outlives runs, resumes and restarts:

- ``guard_changes``: one row per consent flip, delete or consent write-back made without a
  confirm, with its time; the guard counts those in its window (pruned as they age out);
- ``guard``: per integration, since when it holds (NULL: it does not) and why;
- ``guard_held``: what was held, ``(kind, key)`` with kind ``consent`` or ``delete`` (key:
  the source record) or ``writeback`` (key: the profile key), so that a confirm can release
  exactly these; ``confirmed`` rows pass the guard once, uncounted, for a window's time.

Only a person's confirm (:meth:`GuardTables.guard_confirm`) clears a hold or the count.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any

MIGRATION = """
CREATE TABLE guard_changes (
    integration TEXT NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL
);
CREATE INDEX guard_changes_at ON guard_changes (integration, at);
CREATE TABLE guard (
    integration TEXT PRIMARY KEY,
    held_since REAL,
    reason TEXT
) WITHOUT ROWID;
CREATE TABLE guard_held (
    integration TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    at REAL NOT NULL,
    confirmed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (integration, kind, key)
) WITHOUT ROWID;
"""


class GuardTables:
    #: Provided by :class:`syncd.engine.store.Store`.
    _tx: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _read: Callable[..., list[sqlite3.Row]]

    def guard_state(self, integration: str, window: float, now: float | None = None
                    ) -> dict[str, Any]:
        """``count`` (changes in the window), ``held_since``, ``reason`` and ``held`` (how
        many changes wait, by kind)."""
        now = time.time() if now is None else now
        count = self._read("SELECT count(*) FROM guard_changes WHERE integration=? AND at>?",
                           (integration, now - window))[0][0]
        row = self._read("SELECT held_since, reason FROM guard WHERE integration=?",
                         (integration,))
        held = {r[0]: r[1] for r in self._read(
            "SELECT kind, count(*) FROM guard_held WHERE integration=? AND confirmed=0 "
            "GROUP BY kind", (integration,))}
        return {"count": count, "held_since": row[0][0] if row else None,
                "reason": row[0][1] if row else None, "held": held}

    def guard_admit(self, integration: str, admitted: Sequence[tuple[str, str]],
                    held: Sequence[tuple[str, str]], reason: str | None,
                    window: float, now: float | None = None) -> None:
        """Count the ``admitted`` changes, and, when ``held`` is not empty, remember them and
        hold the integration (from now, unless it already holds), in one transaction."""
        now = time.time() if now is None else now
        with self._tx() as conn:
            conn.execute("DELETE FROM guard_changes WHERE integration=? AND at<=?",
                         (integration, now - window))
            conn.execute("DELETE FROM guard_held WHERE integration=? AND confirmed=1 AND "
                         "at<=?", (integration, now - window))
            conn.executemany(
                "INSERT INTO guard_changes (integration, at, kind, key) VALUES (?, ?, ?, ?)",
                [(integration, now, kind, key) for kind, key in admitted])
            if held:
                conn.executemany(
                    "INSERT INTO guard_held (integration, kind, key, at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(integration, kind, key) DO UPDATE SET at=excluded.at, "
                    "confirmed=0", [(integration, kind, key, now) for kind, key in held])
                conn.execute(
                    "INSERT INTO guard (integration, held_since, reason) VALUES (?, ?, ?) "
                    "ON CONFLICT(integration) DO UPDATE SET held_since="
                    "coalesce(guard.held_since, excluded.held_since), "
                    "reason=coalesce(guard.reason, excluded.reason)",
                    (integration, now, reason))

    def guard_counted(self, integration: str, kind: str, keys: Sequence[str], window: float
                      ) -> set[str]:
        """Those of ``keys`` counted as ``kind`` changes within the window."""
        found: set[str] = set()
        since = time.time() - window
        keys = list(keys)
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(r[0] for r in self._read(
                f"SELECT key FROM guard_changes WHERE integration=? AND kind=? AND at>? AND "
                f"key IN ({marks})", (integration, kind, since, *chunk)))
        return found

    def guard_take_confirmed(self, integration: str, items: Iterable[tuple[str, str]]
                             ) -> set[tuple[str, str]]:
        """Those of ``items`` a person confirmed (each passes once): removed and returned."""
        items = list(items)
        if not items:
            return set()
        found = set()
        with self._tx() as conn:
            for kind, key in items:
                cur = conn.execute("DELETE FROM guard_held WHERE integration=? AND kind=? AND "
                                   "key=? AND confirmed=1", (integration, kind, key))
                if cur.rowcount:
                    found.add((kind, key))
        return found

    def guard_confirm(self, integration: str, now: float | None = None, *,
                      release: bool = True) -> list[tuple[str, str]]:
        """A person confirmed: the hold ends, the count starts again from zero, and what
        was held passes once (``release``; else it is forgotten: a confirmed full sync
        derives it again). Returns the held ``(kind, key)`` pairs."""
        now = time.time() if now is None else now
        with self._tx() as conn:
            rows = conn.execute("SELECT kind, key FROM guard_held WHERE integration=? AND "
                                "confirmed=0 ORDER BY at, key", (integration,)).fetchall()
            if release:
                conn.execute("UPDATE guard_held SET confirmed=1, at=? WHERE integration=?",
                             (now, integration))
            else:
                conn.execute("DELETE FROM guard_held WHERE integration=?", (integration,))
            conn.execute("DELETE FROM guard_changes WHERE integration=?", (integration,))
            conn.execute("DELETE FROM guard WHERE integration=?", (integration,))
        return [(r[0], r[1]) for r in rows]
