"""The links, opt-outs and cursors of the state database (a mixin of
:class:`syncd.engine.store.Store`, which provides ``_tx`` and ``_read``): what syncd last wrote for
each source record, the opt-outs read from destinations, and the cursors of jobs."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager

from syncd.records import Link


class LinkTables:
    #: Provided by :class:`syncd.engine.store.Store`.
    _tx: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _read: Callable[..., list[sqlite3.Row]]

    def links(self, integration: str, source_ids: Sequence[str]) -> dict[str, Link]:
        """``source_id -> Link`` for the ids that have a link."""
        out: dict[str, Link] = {}
        ids = list(source_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._read(
                    f"SELECT source_id, dest_key, digest, state FROM links WHERE integration=? "
                    f"AND source_id IN ({marks})", (integration, *chunk)):
                out[row[0]] = Link(row[1], row[2], json.loads(row[3]) if row[3] else {})
        return out

    def linked_elsewhere(self, integration: str, source_ids: Sequence[str]) -> set[str]:
        """The ids another integration has a link for and ``integration`` has none: their
        profiles are another integration's (e.g. another CRM into the same account)."""
        ids = list(dict.fromkeys(source_ids))
        out: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._read(
                f"SELECT source_id, MAX(integration = ?) FROM links WHERE source_id IN "
                f"({marks}) GROUP BY source_id", (integration, *chunk))
            out.update(row[0] for row in rows if not row[1])
        return out

    def save_links(self, integration: str,
                   rows: Iterable[tuple[str, str, str | None, dict | None]]) -> None:
        """Upsert ``(source_id, dest_key, digest, state)`` rows."""
        now = time.time()
        with self._tx() as conn:
            conn.executemany(
                "INSERT INTO links (integration, source_id, dest_key, digest, state, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(integration, source_id) DO UPDATE SET "
                "dest_key=excluded.dest_key, digest=excluded.digest, state=excluded.state, "
                "updated_at=excluded.updated_at",
                [(integration, s, k, d, json.dumps(st, sort_keys=True) if st else None, now)
                 for s, k, d, st in rows])

    def links_before_write(self, integration: str,
                           rows: Sequence[tuple[str, bool, dict | None]]) -> None:
        """Before a write, in one transaction, for each ``(source_id, known, state)``: a
        provisional link (no digest) where syncd never wrote the record (not ``known``), and
        the digest forgotten where it did; either way with ``state``, the consents and tags
        in flight (:func:`syncd.engine.inflight.before_answer`). A write may reach the
        destination although its answer never comes back (a lost answer, a kill): until the
        answer's digest and state are saved the link must not claim the destination holds
        what was written before, or a source going back to that state would be found
        "unchanged" and never written again."""
        now = time.time()

        def dump(state: dict | None) -> str | None:
            return json.dumps(state, sort_keys=True) if state else None

        with self._tx() as conn:
            conn.executemany(
                "INSERT INTO links (integration, source_id, dest_key, digest, state, updated_at) "
                "VALUES (?, ?, ?, NULL, ?, ?) ON CONFLICT(integration, source_id) DO UPDATE "
                "SET digest=NULL, state=excluded.state, updated_at=excluded.updated_at",
                [(integration, s, s, dump(st), now) for s, known, st in rows if not known])
            conn.executemany(
                "UPDATE links SET digest=NULL, state=? WHERE integration=? AND source_id=?",
                [(dump(st), integration, s) for s, known, st in rows if known])

    def delete_links(self, integration: str, source_ids: Sequence[str]) -> None:
        with self._tx() as conn:
            conn.executemany("DELETE FROM links WHERE integration=? AND source_id=?",
                             [(integration, s) for s in source_ids])

    def forget_digests(self, integration: str) -> None:
        """Make the next full sync rewrite every profile (after a mapping change)."""
        with self._tx() as conn:
            conn.execute("UPDATE links SET digest=NULL WHERE integration=?", (integration,))

    def link_count(self, integration: str) -> int:
        return self._read("SELECT count(*) FROM links WHERE integration=?", (integration,))[0][0]

    # -- opt-outs made in the destination ----------------------------------------------------

    def record_optouts(self, integration: str, rows: Iterable[tuple[str, str, str, str]]
                       ) -> None:
        """Remember ``(key, topic, channel, at)`` opt-outs; a later one replaces an earlier."""
        with self._tx() as conn:
            conn.executemany(
                "INSERT INTO optouts (integration, key, topic, channel, at) VALUES (?,?,?,?,?) "
                "ON CONFLICT(integration, key, topic, channel) DO UPDATE SET at=excluded.at, "
                "written_back=0 WHERE excluded.at > optouts.at",
                [(integration, *row) for row in rows])

    def optouts(self, integration: str, keys: Sequence[str]
                ) -> dict[str, dict[tuple[str, str], str]]:
        """``key -> {(topic, channel): at}``."""
        out: dict[str, dict[tuple[str, str], str]] = {}
        keys = list(keys)
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._read(f"SELECT key, topic, channel, at FROM optouts WHERE "
                                  f"integration=? AND key IN ({marks})", (integration, *chunk)):
                out.setdefault(row[0], {})[(row[1], row[2])] = row[3]
        return out

    def unwritten_optouts(self, integration: str, limit: int = 500) -> list[tuple[str, str, str]]:
        """Opt-outs not yet written back to the source: ``(key, topic, channel)``."""
        rows = self._read("SELECT key, topic, channel FROM optouts WHERE integration=? AND "
                          "written_back=0 LIMIT ?", (integration, limit))
        return [(r[0], r[1], r[2]) for r in rows]

    def unwritten_count(self, integration: str) -> int:
        """How many records have an opt-out not yet written back to the source."""
        return self._read("SELECT count(DISTINCT key) FROM optouts WHERE integration=? AND "
                          "written_back=0", (integration,))[0][0]

    def mark_optouts_written(self, integration: str, rows: Iterable[tuple[str, str, str]]) -> None:
        with self._tx() as conn:
            conn.executemany("UPDATE optouts SET written_back=1 WHERE integration=? AND key=? "
                             "AND topic=? AND channel=?", [(integration, *r) for r in rows])

    def forget_optouts(self, integration: str, rows: Iterable[tuple[str, str, str]]) -> None:
        """The source shows a newer opt-in: the opt-out no longer holds."""
        with self._tx() as conn:
            conn.executemany("DELETE FROM optouts WHERE integration=? AND key=? AND topic=? "
                             "AND channel=?", [(integration, *r) for r in rows])

    # -- cursors ---------------------------------------------------------------------------

    def cursor(self, integration: str, name: str) -> str | None:
        rows = self._read("SELECT value FROM cursors WHERE integration=? AND name=?",
                          (integration, name))
        return rows[0][0] if rows else None

    def set_cursor(self, integration: str, name: str, value: str | None) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO cursors (integration, name, value, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(integration, name) DO UPDATE SET value=excluded.value, "
                "updated_at=excluded.updated_at", (integration, name, value, time.time()))

    # -- runs ------------------------------------------------------------------------------
