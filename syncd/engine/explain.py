"""Explain a contact: what syncd did with one record, and why (``syncd explain``).

The coordinator writes a bounded journal into the state store (table ``journal``, kept
``[daemon] journal_days`` days, pruned hourly) at three points:

- ``decision``: each time the rules decide a record: every condition with the value found
  and whether it held; what each field mapping produced; each consent with why it is
  opted in or out (the label, an opt-out made in the destination that was kept or
  overridden, and the times compared); the tags; the outcome (write, unchanged, skip,
  delete) and the attributes, consents and tags the write sends.
- ``guard``: consent changes or a delete held by the stop-and-confirm guard, with its
  reason.
- ``writeback``: an opt-out of the destination checked against the source before it is
  written back: written, kept (a newer opt-in in the source), waiting or done, and why.
- ``answer``: the destination's answer to the write or delete (outcome, reason, status,
  the request as a path template), and the source's to a read-back; each with the HTTP
  calls the connector made for the record (``calls``: method, path as sent without
  credentials, status, ms, attempt, the wait before it, the partner's message; see
  :mod:`syncd.connectors.calls`). A call made for many records (an import, a batch read)
  is stored once (table ``journal_call``) and referenced (``{"ref": id}``) by each.

The events come from the inbox itself (received, attempts, status, last error). A story is
these, newest last. Nothing holding a secret is ever journaled: records' values, config
names and partners' answers as the connectors phrase them (which never quote credentials).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import structlog

from syncd.connectors import calls as C
from syncd.engine import rules as R
from syncd.engine.dryrun import migrate, remember_sent
from syncd.records import Link, Record

log = structlog.get_logger("syncd.engine.explain")

MIGRATION = """
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    integration TEXT NOT NULL,
    record_id TEXT NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_record ON journal (integration, record_id, id);
CREATE INDEX IF NOT EXISTS journal_at ON journal (at);
CREATE TABLE IF NOT EXISTS journal_call (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    integration TEXT NOT NULL,
    at REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_call_at ON journal_call (at);
"""

#: Stories show at most this many journal entries (the newest).
STORY_LIMIT = 200


# -- the pure part: why a decision is what it is ----------------------------------------------


def why(rules: R.Rules, record: Record, link: Link | None,
        optouts: dict[tuple[str, str], str] | None, decision: R.Decision) -> dict[str, Any]:
    """The reasons behind ``decision`` (from :func:`syncd.engine.rules.decide` with the same
    arguments), as plain data."""
    out: dict[str, Any] = {"outcome": type(decision).__name__.lower()}
    if record.deleted:
        out["deleted"] = True
    out["conditions"] = [
        {"field": c.field, "wanted": c.value, "found": record.get(c.field),
         "held": R.matches([c], record)} for c in rules.conditions]
    if isinstance(decision, R.Skip | R.Delete):
        out["reason"] = decision.reason
        return out
    out["fields"] = {dest: {"from": src, "value": record.fields.get(src)}
                     for src, dest in rules.fields.items()}
    out["consents"] = _consents(rules, record, optouts or {}, link)
    if rules.selections:
        out["tags"] = {tag: sel in record.selections for sel, tag in rules.selections.items()}
    if isinstance(decision, R.Write):
        p = decision.profile
        out["sends"] = {"attributes": p.attributes,
                        "consents": {R.consent_key(c): c.opted_in for c in p.consents},
                        "tags": p.tags, "new": not decision.known}
        out["flipped"] = list(decision.flipped)
    elif isinstance(decision, R.Unchanged):
        out["reason"] = "the destination already holds what the rules give (same digest)"
    return out


def _consents(rules: R.Rules, record: Record, optouts: dict[tuple[str, str], str],
              link: Link | None) -> list[dict[str, Any]]:
    resolved, overridden = R.resolve_consents(rules, record, optouts)
    written = dict(((link.state or {}).get("c", {}) if link else {}).items())
    out = []
    for mapping, consent in zip(rules.consents, resolved, strict=True):
        key = (mapping.topic, mapping.channel)
        label = mapping.label in record.labels
        opted_out_at = optouts.get(key)
        label_at = record.label_times.get(mapping.label)
        if not label:
            why_ = f"label {mapping.label!r} is not on the record: opted out"
        elif opted_out_at is None:
            why_ = f"label {mapping.label!r} is on the record: opted in"
        elif key in overridden:
            why_ = (f"label {mapping.label!r} was set at {label_at}, after the opt-out made "
                    f"in the destination at {opted_out_at}: opted in again")
        else:
            why_ = (f"opt-out kept: it was made in the destination at {opted_out_at}, and "
                    f"label {mapping.label!r} was set "
                    f"{'at ' + label_at + ', before it' if label_at else 'at an unknown time'}"
                    " (only a newer opt-in in the source overrides it)")
        out.append({"topic": mapping.topic, "channel": mapping.channel,
                    "opted_in": consent.opted_in, "why": why_,
                    "last_written": written.get(R.consent_key(consent))})
    return out


# -- the journal ------------------------------------------------------------------------------


class Journal:
    """One integration's journal in the store (``store._tx``/``_read``, as guardstore)."""

    def __init__(self, store: Any, integration: str):
        self.store = store
        self.integration = integration
        with store._tx() as conn:
            for statement in MIGRATION.split(";"):
                if statement.strip():
                    conn.execute(statement)
        migrate(store)  # the tables of dry runs

    def _add(self, rows: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
        if not rows:
            return
        now = time.time()
        try:
            with self.store._tx() as conn:
                conn.executemany(
                    "INSERT INTO journal (integration, record_id, at, kind, data) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [(self.integration, rid, now, kind, json.dumps(data, default=str))
                     for rid, kind, data in rows])
        except Exception as exc:  # the journal explains; it never stops a sync
            log.warning("journal.write_failed", integration=self.integration,
                        error=f"{type(exc).__name__}: {exc}")

    def decided(self, rules: R.Rules, records: Sequence[Record], links: dict[str, Link],
                optouts: dict, decisions: Sequence[R.Decision], *, full_sync: bool) -> None:
        self._add([(r.id, "decision", {**why(rules, r, links.get(r.id), optouts.get(r.id), d),
                                       "path": "full sync" if full_sync else "real time"})
                   for r, d in zip(records, decisions, strict=True)])

    def held(self, items: Sequence[tuple[str, str]], reason: str | None) -> None:
        """``(record_id, what)`` held by the guard."""
        self._add([(rid, "guard", {"held": what, "reason": reason}) for rid, what in items])

    def write_back(self, items: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """``(record_id, check)``: a pending write-back checked against the source
        (:mod:`syncd.engine.writeback`): written back, kept, waiting or done, and why."""
        self._add([(rid, "writeback", data) for rid, data in items])

    def _calls(self, via: Any, keys: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
        """The HTTP calls the connection ``via`` made for ``keys`` (the connector's key ->
        record id), per record id: inline, or a reference to the one stored copy of a call
        made for several records."""
        taken = C.take(via, keys) if via is not None and keys else []
        if not taken:
            return {}
        refs: dict[int, int] = {}
        try:
            with self.store._tx() as conn:
                for n, (exchange, marked) in enumerate(taken):
                    if len(marked) > 1:
                        refs[n] = conn.execute(
                            "INSERT INTO journal_call (integration, at, data) VALUES (?, ?, ?)",
                            (self.integration, exchange.at, json.dumps(exchange.data()))
                        ).lastrowid
        except Exception as exc:  # the journal explains; it never stops a sync
            log.warning("journal.calls_failed", integration=self.integration,
                        error=f"{type(exc).__name__}: {exc}")
            return {}
        out: dict[str, list[dict[str, Any]]] = {}
        for n, (exchange, marked) in enumerate(taken):
            call = {"ref": refs[n]} if n in refs else exchange.data()
            for key in marked:
                if key in keys:
                    out.setdefault(keys[key], []).append(call)
        return out

    def read_back(self, source: str, records: Sequence[Record], failures: Sequence,
                  via: Any = None) -> None:
        """The source's answers to reading back the records events named (and the HTTP
        calls of the connection ``via`` made for them)."""
        rows: list[tuple[str, str, dict[str, Any]]] = [
            (r.id, "answer", {"request": f"read back from {source}",
                              "outcome": "unreadable" if r.error else
                              "deleted" if r.deleted else "read",
                              "reason": r.error}) for r in records]
        rows += [(i.event.record_id, "answer", {"request": f"read back from {source}",
                                                "outcome": "failed", "reason": reason,
                                                "retryable": retryable})
                 for items, reason, retryable in failures for i in items]
        made = self._calls(via, {rid: rid for rid, _, _ in rows})
        for rid, _, data in rows:
            if made.get(rid):
                data["calls"] = made.pop(rid)  # once: an id read back twice
        self._add(rows)

    def answered(self, pairs: Sequence[tuple], via: Any = None) -> None:
        """``(record_id, request, result[, attributes sent])`` for each write or delete, with
        the HTTP calls the connection ``via`` made for it; the attributes of a write that
        went are kept for dry runs (:mod:`syncd.engine.dryrun`)."""
        made = self._calls(via, {r.key: rid for rid, _, r, *_ in pairs})
        self._add([(rid, "answer", {
            "request": request, "outcome": r.outcome, "reason": r.reason,
            "retryable": r.retryable, "remote_id": r.remote_id,
            "status": getattr(r, "status", None), "endpoint": getattr(r, "endpoint", None),
            **({"calls": made.pop(rid)} if made.get(rid) else {})})
            for rid, request, r, *_ in pairs])
        sent = [(p[0], p[3]) for p in pairs if len(p) > 3 and p[2].outcome != "failed"]
        try:
            remember_sent(self.store, self.integration, sent)
        except Exception as exc:  # a dry run then shows these attributes as unknown
            log.warning("journal.sent_attributes_failed", integration=self.integration,
                        error=f"{type(exc).__name__}: {exc}")


def prune(store: Any, days: float, now: float | None = None) -> int:
    """Forget journal entries older than ``days``; returns how many."""
    now = time.time() if now is None else now
    try:
        with store._tx() as conn:
            conn.execute("DELETE FROM journal_call WHERE at < ?", (now - days * 86400,))
            return conn.execute("DELETE FROM journal WHERE at < ?",
                                (now - days * 86400,)).rowcount
    except Exception as exc:  # no journal yet
        if "no such table" in str(exc):
            return 0
        raise


def story(store: Any, integration: str, record_id: str, limit: int = STORY_LIMIT
          ) -> dict[str, Any]:
    """One record's story: its link, the events of the inbox and the journal, newest last."""
    entries = []
    for row in store._read(
            "SELECT id, received_at, connection, kind, status, attempts, last_error FROM inbox "
            "WHERE integration=? AND record_id=? ORDER BY id DESC LIMIT ?",
            (integration, record_id, limit)):
        entries.append({"at": row[1], "kind": "event", "data": {
            "connection": row[2], "event": row[3], "status": row[4], "attempts": row[5],
            "error": row[6]}})
    try:
        rows = store._read("SELECT at, kind, data FROM journal WHERE integration=? AND "
                           "record_id=? ORDER BY id DESC LIMIT ?",
                           (integration, record_id, limit))
    except Exception as exc:
        if "no such table" not in str(exc):
            raise
        rows = []
    entries += [{"at": r[0], "kind": r[1], "data": json.loads(r[2])} for r in rows]
    _resolve_calls(store, entries)
    entries.sort(key=lambda e: e["at"])  # stable: journal order kept within a commit
    link = store.links(integration, [record_id]).get(record_id)
    return {"integration": integration, "record": record_id,
            "link": None if link is None else {"destination_key": link.dest_key,
                                               "written": bool(link.digest)},
            "entries": entries[-limit:]}


def _resolve_calls(store: Any, entries: list[dict[str, Any]]) -> None:
    """Replace each ``{"ref": id}`` call by the call stored once (dropped when pruned)."""
    refs = {c["ref"] for e in entries for c in e["data"].get("calls") or () if "ref" in c}
    if not refs:
        return
    found: dict[int, dict[str, Any]] = {}
    ids = sorted(refs)
    for start in range(0, len(ids), 500):
        part = ids[start:start + 500]
        found.update((row[0], json.loads(row[1])) for row in store._read(
            f"SELECT id, data FROM journal_call WHERE id IN ({','.join('?' * len(part))})",
            tuple(part)))
    for e in entries:
        if e["data"].get("calls"):
            e["data"]["calls"] = [found[c["ref"]] if "ref" in c else c
                                  for c in e["data"]["calls"] if "ref" not in c or
                                  c["ref"] in found]
