"""A connection's ledger kept in the state store (:mod:`syncd.connectors.ledger` says what
it holds). Its tables are created on first use; counts are per connection, name and reason,
notes are pruned to the last :data:`~syncd.connectors.ledger.NOTES_KEPT` per connection and
name in the transaction that adds one."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from syncd.connectors.ledger import NOTES_KEPT, TEXT_KEPT, Ledger, clean

MIGRATION = """
CREATE TABLE IF NOT EXISTS connection_counts (
    connection TEXT NOT NULL,
    name TEXT NOT NULL,
    reason TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (connection, name, reason)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS connection_notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    connection TEXT NOT NULL,
    name TEXT NOT NULL,
    at REAL NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS connection_notes_by ON connection_notes (connection, name, id);
"""


def migrate(store: Any) -> None:
    with store._tx() as conn:
        for statement in MIGRATION.split(";"):
            if statement.strip():
                conn.execute(statement)


def totals(store: Any, name: str) -> dict[tuple[str, str], int]:
    """``(connection, reason) -> count`` of ``name`` for every connection (``/metrics``)."""
    migrate(store)
    return {(r[0], r[1]): int(r[2]) for r in store._read(
        "SELECT connection, reason, value FROM connection_counts WHERE name=?", (name,))}


class StoreLedger(Ledger):
    """The ledger of connection ``connection`` in ``store``; ``sources()`` names the
    integrations that read from it now (asked at each :meth:`linked`: a reload may change
    them)."""

    def __init__(self, store: Any, connection: str,
                 sources: Callable[[], Iterable[str]] = tuple):
        super().__init__()
        self.store = store
        self.connection = connection
        self.sources = sources
        migrate(store)

    def count(self, name: str, reason: str, **detail: Any) -> None:
        reason = reason[:TEXT_KEPT]
        c = self.connection
        with self.store._tx() as conn:
            conn.execute(
                "INSERT INTO connection_counts (connection, name, reason, value) VALUES "
                "(?, ?, ?, 1) ON CONFLICT(connection, name, reason) DO UPDATE SET "
                "value = value + 1", (c, name, reason))
            conn.execute(
                "INSERT INTO connection_notes (connection, name, at, reason, detail) VALUES "
                "(?, ?, ?, ?, ?)",
                (c, name, time.time(), reason, json.dumps(clean(detail), sort_keys=True)))
            conn.execute(
                "DELETE FROM connection_notes WHERE connection=? AND name=? AND id <= ("
                "SELECT id FROM connection_notes WHERE connection=? AND name=? "
                "ORDER BY id DESC LIMIT 1 OFFSET ?)", (c, name, c, name, NOTES_KEPT))

    def counts(self, name: str) -> dict[str, int]:
        return {r[0]: int(r[1]) for r in self.store._read(
            "SELECT reason, value FROM connection_counts WHERE connection=? AND name=?",
            (self.connection, name))}

    def notes(self, name: str, limit: int = 20) -> list[dict[str, Any]]:
        rows = self.store._read(
            "SELECT at, reason, detail FROM connection_notes WHERE connection=? AND name=? "
            "ORDER BY id DESC LIMIT ?", (self.connection, name, max(0, limit)))
        return [{"at": r[0], "reason": r[1], "detail": json.loads(r[2])} for r in rows]

    def linked(self, source_ids: Iterable[str]) -> set[str]:
        integrations = list(self.sources())
        ids = list(dict.fromkeys(source_ids))
        out: set[str] = set()
        if not integrations or not ids:
            return out
        marks_i = ",".join("?" * len(integrations))
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            out.update(r[0] for r in self.store._read(
                f"SELECT DISTINCT source_id FROM links WHERE integration IN ({marks_i}) AND "
                f"source_id IN ({marks})", (*integrations, *chunk)))
        return out
