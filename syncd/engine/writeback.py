"""The write-back of destination opt-outs to the source, as an object the coordinator's jobs
hold (``coordinator.jobs.write_backs``): each pending opt-out is checked against the source's
record as it is *now* (a direct read, READ_RECORD) before anything is withdrawn, newest wins
(:func:`syncd.engine.newest.check_write_back`):

- written back (through the stop-and-confirm guard), as before;
- kept: the source's opt-in is newer; the opt-out is forgotten and the record is applied as
  usual (its opt-in goes to the destination, through the guard);
- waiting: a change of the record is in the inbox, not applied yet (and the source gives no
  time), or the record could not be read: it stays pending, decided again when the
  coordinator has drained that change (:meth:`WriteBacks.after_drain`) and at every consent
  poll. Never dropped;
- done: the record is gone from the source: nothing to withdraw.

Each check is journaled for ``syncd explain`` (kind ``writeback``); the pending write-backs
show in ``syncd status`` and ``syncd events list`` (:func:`write_back_events`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from syncd.capability import Capability
from syncd.engine import newest as N
from syncd.records import Event, Record

if TYPE_CHECKING:
    from syncd.engine.coordinator import Coordinator

#: How long a coordinator waits for one call of a connection actor.
CALL_TIMEOUT = 600.0


def waiting_changes(store: Any, integration: str, keys: Iterable[str]) -> set[str]:
    """The ``keys`` whose record has a change in the inbox not applied yet (pending or
    waiting to be tried again)."""
    wanted = {k.casefold(): k for k in keys}
    out: set[str] = set()
    folded = sorted(wanted)
    for start in range(0, len(folded), 500):  # only the events that may name them
        chunk = folded[start:start + 500]
        rows = store._read(
            f"SELECT record_id, data FROM inbox WHERE integration=? AND status='pending' AND "
            f"(lower(record_id) IN ({','.join('?' * len(chunk))}) OR data LIKE "
            f"'%\"person\"%')", (integration, *chunk))
        for record_id, data in rows:
            event = Event(record_id, data=json.loads(data) if data else {})
            out.update(wanted[k] for k in chunk if N.concerns(event, k))
    return out


def write_back_events(store: Any, integration: str | None) -> list[dict[str, Any]]:
    """The pending write-backs, for ``syncd events list``: one per record, with the reason
    of its last check (journaled) when it waits."""
    where = "written_back=0" + (" AND integration=?" if integration else "")
    rows = store._read(f"SELECT integration, key, topic, channel, at FROM optouts WHERE "
                       f"{where} ORDER BY at", (integration,) if integration else ())
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for name, key, topic, channel, at in rows:
        entry = out.setdefault((name, key), {
            "id": f"writeback:{key}", "integration": name, "connection": "write-back",
            "record_id": key, "kind": "opt-out write-back", "status": "pending",
            "received_at": _epoch(at), "attempts": 0, "error": _last_check(store, name, key),
            "topics": []})
        entry["topics"].append(f"{topic}/{channel}")
    return list(out.values())


def _epoch(at: str) -> float | None:
    try:
        return dt.datetime.fromisoformat(at).timestamp()
    except ValueError:
        return None


def _last_check(store: Any, integration: str, key: str) -> str | None:
    try:
        rows = store._read("SELECT data FROM journal WHERE integration=? AND record_id=? AND "
                           "kind='writeback' ORDER BY id DESC LIMIT 1", (integration, key))
    except Exception:  # no journal yet
        return None
    if not rows:
        return None
    data = json.loads(rows[0][0])
    return f"{data.get('action')}: {data.get('reason')}"


class WriteBacks:
    """Held by :class:`syncd.engine.jobs.Jobs`; ``c`` is the coordinator (store, gate,
    journal, source, rules, the writes)."""

    def __init__(self, coordinator: Coordinator):
        self.c = coordinator
        #: Keys whose write-back waits for a change in the inbox to be applied.
        self.waiting: set[str] = set()

    def after_drain(self) -> None:
        """The coordinator drained its inbox: write-backs that waited for a change now
        applied are decided again (a message to itself)."""
        if not self.waiting:
            return
        ready = self.waiting - waiting_changes(self.c.store, self.c.name, self.waiting)
        if ready:
            self.waiting -= ready
            self.c._self.run_job.defer("write_backs", {})

    def run(self, by_topic: dict[tuple[str, str], str]) -> None:
        """Check every pending write-back against the source, then write back what stands."""
        c = self.c
        pending: dict[str, list[tuple[str, str, str]]] = {}
        for key, topic, channel in c.store.unwritten_optouts(c.name):
            pending.setdefault(key, []).append((key, topic, channel))
        if not pending:
            return
        times = c.store.optouts(c.name, list(pending))
        read = Capability.READ_RECORD in c.capabilities.get("source", ())
        changed = waiting_changes(c.store, c.name, pending)
        to_write: dict[str, list[tuple[str, str, str]]] = {}
        kept: list[Record] = []
        for key, rows in pending.items():
            record = self._read(key) if read else None
            if isinstance(record, str):  # the read failed: wait
                checks = [N.WriteBackCheck(N.WAIT, record)] * len(rows)
            else:
                checks = [N.check_write_back(by_topic.get((t, ch), ""),
                                             times.get(key, {}).get((t, ch), ""), record,
                                             read=read, changed_since=key in changed)
                          for _, t, ch in rows]
            c.journal.write_back([(key, {"action": check.action, "reason": check.reason,
                                         "topic": t, "channel": ch})
                                  for (_, t, ch), check in zip(rows, checks, strict=True)])
            by_action: dict[str, list[tuple[str, str, str]]] = {}
            for row, check in zip(rows, checks, strict=True):
                by_action.setdefault(check.action, []).append(row)
            if by_action.get(N.DONE):
                c.store.mark_optouts_written(c.name, by_action[N.DONE])
            if by_action.get(N.KEEP):
                c.store.forget_optouts(c.name, by_action[N.KEEP])
                if isinstance(record, Record):
                    kept.append(record)
            if by_action.get(N.WAIT):
                self.waiting.add(key)
                c.log.info("consent.write_back_waits", record_id=key,
                           reason=next(ch.reason for ch in checks if ch.action == N.WAIT))
            if by_action.get(N.WRITE):
                to_write[key] = by_action[N.WRITE]
        if kept:  # the source's newer opt-ins go to the destination as usual
            c.log.info("consent.newer_optins_kept", count=len(kept))
            c._apply(kept, full_sync=False)
        self._write(to_write, by_topic)

    def _read(self, key: str) -> Record | str | None:
        """The record as the source holds it now; a string (the reason) when it failed."""
        try:
            return self.c.source.read_record(key).get(timeout=CALL_TIMEOUT)
        except Exception as exc:
            return f"reading the record from the source failed ({type(exc).__name__}: " \
                   f"{exc}): decided again at the next consent poll"

    def _write(self, pending: dict[str, list[tuple[str, str, str]]],
               by_topic: dict[tuple[str, str], str]) -> None:
        c = self.c
        allowed = c.gate.write_backs(list(pending))
        for key, rows in pending.items():
            if key not in allowed:
                continue  # held: stays unwritten until a person confirms
            labels = {by_topic[(t, ch)]: False for _, t, ch in rows if (t, ch) in by_topic}
            result = c.source.write_consents(key, labels).get(timeout=CALL_TIMEOUT)
            c.journal.answered([(key, f"opt-out written back to {c.integration.source}",
                                 result)], via=c.source)  # explain.py
            if result.outcome == "failed":
                c.log.warning("consent.write_back_failed", record_id=key, reason=result.reason)
                continue
            c.store.mark_optouts_written(c.name, rows)
            c.log.info("consent.written_back", record_id=key, labels=sorted(labels))
