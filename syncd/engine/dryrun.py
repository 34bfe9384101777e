"""Dry runs and plans: what a full sync would change, kept, shown, and applied exactly.

``syncd sync start I --dry-run`` reads every record of the source (a run of kind
``dry_run``, in a thread of its own: nothing is written anywhere but the plan) and decides
each with the integration's rules against what syncd knows of the destination: the link
(whether the profile exists, the consents and tags last written), the opt-outs read from
the destination, and the attributes syncd last sent (table ``sent_attributes``, kept by
:meth:`syncd.engine.explain.Journal.answered`). Each record that would change is a plan entry:
``create``, ``update`` (the attributes that change, old and new; the consents and tags that
change) or ``delete``, with a fingerprint of the record as read. The run's counters (shown by
``syncd runs``) count the records as a full sync would; ``syncd runs show RUN`` lists the
plan.

``syncd sync start I --plan RUN`` applies exactly that plan (a run of kind ``plan``): each
planned record is read again; one whose fingerprint differs (the source changed since), or
whose decision is no longer the planned one (the destination changed since), is refused
with that reason and nothing is written for it; the others are written as a full sync
writes (the guard, links, journal and fail-fast included).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict
from typing import Any

import structlog

from syncd.engine import rules as R
from syncd.engine.records import Event, Record

log = structlog.get_logger("syncd.engine.dryrun")

MIGRATION = """
CREATE TABLE IF NOT EXISTS plan (
    run_id INTEGER NOT NULL,
    record_id TEXT NOT NULL,
    action TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    digest TEXT,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, record_id)
);
CREATE TABLE IF NOT EXISTS sent_attributes (
    integration TEXT NOT NULL,
    record_id TEXT NOT NULL,
    attributes TEXT NOT NULL,
    PRIMARY KEY (integration, record_id)
);
"""

CALL_TIMEOUT = 600.0


def migrate(store: Any) -> None:
    with store._tx() as conn:
        for statement in MIGRATION.split(";"):
            if statement.strip():
                conn.execute(statement)


def fingerprint(record: Record) -> str:
    """The record as read, hashed: a plan is refused for a record whose fingerprint moved."""
    data = asdict(record)
    data.pop("error", None)
    for key in ("labels", "selections"):
        data[key] = sorted(data[key])
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def remember_sent(store: Any, integration: str, rows: list[tuple[str, dict]]) -> None:
    """The attributes just written for each record (what a dry run compares with)."""
    if rows:
        with store._tx() as conn:
            conn.executemany(
                "INSERT INTO sent_attributes (integration, record_id, attributes) "
                "VALUES (?, ?, ?) ON CONFLICT(integration, record_id) DO UPDATE SET "
                "attributes=excluded.attributes",
                [(integration, rid, json.dumps(attrs, default=str)) for rid, attrs in rows])


def _sent(store: Any, integration: str, ids: list[str]) -> dict[str, dict]:
    out = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for rid, attrs in store._read(
                f"SELECT record_id, attributes FROM sent_attributes WHERE integration=? AND "
                f"record_id IN ({marks})", (integration, *chunk)):
            out[rid] = json.loads(attrs)
    return out


# -- planning (pure) ----------------------------------------------------------------------------


def entry(decision: R.Decision, link, sent: dict | None) -> tuple[str, dict] | None:
    """The plan entry of one decision: ``(action, details)``, or None (no change)."""
    if isinstance(decision, R.Delete):
        return "delete", {"reason": decision.reason, "destination_key": decision.key}
    if not isinstance(decision, R.Write):
        return None
    p = decision.profile
    consents = {R.consent_key(c): c.opted_in for c in p.consents}
    if not decision.known:
        return "create", {"attributes": p.attributes, "consents": consents, "tags": p.tags}
    if sent is None:
        attributes = {k: {"new": v} for k, v in p.attributes.items()}  # not known: all sent
    else:
        attributes = {k: {"old": sent.get(k), "new": v} for k, v in p.attributes.items()
                      if sent.get(k) != v}
    return "update", {"attributes": attributes, "attributes_known": sent is not None,
                      "consents": consents, "tags": p.tags, "flips": list(decision.flipped)}


# -- the dry run --------------------------------------------------------------------------------


def start(daemon: Any, integration: str) -> int:
    """Start a dry run of ``integration`` in a thread; returns its run id."""
    migrate(daemon.store)
    run_id = daemon.store.start_run(integration, "dry_run")
    threading.Thread(target=_dry_run, args=(daemon, integration, run_id), daemon=True,
                     name=f"dry-run-{integration}").start()
    return run_id


def _dry_run(daemon: Any, name: str, run_id: int) -> None:
    store, cfg = daemon.store, daemon.config.integrations[name]
    rules = daemon._rules(cfg)
    cursor, status, error = None, "completed", None
    try:
        while True:
            page = daemon.connection(cfg.source).read_page(cursor, cfg.page_size).get(
                timeout=CALL_TIMEOUT)
            _plan_page(store, name, rules, run_id, list(page.records), page.total)
            cursor = page.cursor
            if cursor is None:
                break
    except Exception as exc:
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        log.error("dry_run.failed", integration=name, run_id=run_id, error=error)
    store.finish_run(run_id, status, error)
    log.info("dry_run.finished", integration=name, run_id=run_id, status=status)


def _plan_page(store: Any, name: str, rules: R.Rules, run_id: int, records: list[Record],
               total: int | None) -> None:
    counts = {"processed": len(records)}
    readable = [r for r in records if not r.error]
    errors = [(r.id, f"unreadable: {r.error}", True) for r in records if r.error]
    if errors:
        counts["failed"] = len(errors)
    ids = [r.id for r in readable]
    links = store.links(name, ids)
    optouts = store.optouts(name, ids) if rules.consents else {}
    sent = _sent(store, name, ids)
    rows = []
    for record in readable:
        decision = R.decide(rules, record, links.get(record.id), optouts.get(record.id))
        found = entry(decision, links.get(record.id), sent.get(record.id))
        outcome = {"create": "created", "update": "updated", "delete": "deleted"}.get(
            found[0] if found else "", "skipped" if isinstance(decision, R.Skip)
            else "unchanged")
        counts[outcome] = counts.get(outcome, 0) + 1
        if found:
            digest = decision.digest if isinstance(decision, R.Write) else None
            rows.append((run_id, record.id, found[0], fingerprint(record), digest,
                         json.dumps(found[1], default=str)))
    with store._tx() as conn:
        conn.executemany("INSERT OR REPLACE INTO plan (run_id, record_id, action, fingerprint, "
                         "digest, data) VALUES (?, ?, ?, ?, ?, ?)", rows)
    store.progress_run(run_id, counts, total=total, errors=errors)


def plan(store: Any, run_id: int, limit: int = 1000) -> dict[str, Any]:
    """The plan of dry run ``run_id``: counts by action and change, and its entries."""
    migrate(store)
    rows = store._read("SELECT record_id, action, data FROM plan WHERE run_id=? "
                       "ORDER BY action, record_id", (run_id,))
    summary: dict[str, int] = {}
    entries: list[dict[str, Any]] = []
    for rid, action, data in rows:
        details = json.loads(data)
        summary[action] = summary.get(action, 0) + 1
        for attr in details.get("attributes", {}) if action == "update" else ():
            summary[f"attribute {attr}"] = summary.get(f"attribute {attr}", 0) + 1
        for flip in details.get("flips", []):
            summary[f"consent {flip}"] = summary.get(f"consent {flip}", 0) + 1
        if len(entries) < limit:
            entries.append({"record_id": rid, "action": action, **details})
    return {"summary": summary, "entries": entries, "total": len(rows)}


def render(found: dict[str, Any], limit: int = 50) -> list[str]:
    """``syncd runs show`` lines for a plan."""
    lines = ["  plan: " + (", ".join(f"{k} {v}" for k, v in sorted(found["summary"].items()))
                           or "no change")]
    for e in found["entries"][:limit]:
        if e["action"] == "delete":
            lines.append(f"  delete {e['record_id']}: {e['reason']}")
            continue
        changes = [f"{k}: {v.get('old')!r} -> {v['new']!r}" if "old" in v else
                   f"{k} = {v['new']!r}" if isinstance(v, dict) else f"{k} = {v!r}"
                   for k, v in e.get("attributes", {}).items()]
        changes += [f"consent {k} flips" for k in e.get("flips", [])]
        lines.append(f"  {e['action']} {e['record_id']}: " + ("; ".join(changes) or
                                                            "consents or tags only"))
    if found["total"] > limit:
        lines.append(f"  ... and {found['total'] - limit} more (--json for all)")
    return lines


# -- applying a plan (in the coordinator's actor) --------------------------------------------


def apply(coordinator: Any, plan_run: int, run_id: int) -> None:
    """Apply dry run ``plan_run``'s plan as run ``run_id`` (see the module docstring)."""
    c, store = coordinator, coordinator.store
    status, error = "completed", None
    try:
        rows = store._read("SELECT record_id, action, fingerprint, digest FROM plan "
                           "WHERE run_id=? ORDER BY record_id", (plan_run,))
        size = c.integration.page_size
        for start_at in range(0, len(rows), size):
            _apply_chunk(c, rows[start_at:start_at + size], plan_run, run_id)
    except Exception as exc:
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        c.log.error("plan.failed", run_id=run_id, error=error)
    store.finish_run(run_id, status, error)


def _apply_chunk(c: Any, rows: list, plan_run: int, run_id: int) -> None:
    store = c.store
    records = c.source.read_records([Event(r[0]) for r in rows]).get(timeout=CALL_TIMEOUT)
    by_id = {r.id: r for r in records}
    ids = [r[0] for r in rows]
    links = store.links(c.name, ids)
    optouts = store.optouts(c.name, ids) if c.rules.consents else {}
    counts: dict[str, int] = {"processed": len(rows)}
    refused: list[tuple[str, str, bool]] = []
    writes: list[R.Write] = []
    deletes: list[R.Delete] = []
    for rid, action, planned, digest in rows:
        record = by_id.get(rid)
        if record is None or record.error or fingerprint(record) != planned:
            refused.append((rid, f"the source changed since the plan (run #{plan_run}); "
                                 f"make a new one with --dry-run", False))
            continue
        decision = R.decide(c.rules, record, links.get(rid), optouts.get(rid))
        got = entry(decision, links.get(rid), None)
        if got is None or got[0] != action or (
                isinstance(decision, R.Write) and decision.digest != digest):
            refused.append((rid, f"the destination changed since the plan (run #{plan_run}): "
                                 f"it would now be {got[0] if got else 'no change'}", False))
            continue
        if isinstance(decision, R.Delete):
            deletes.append(decision)
        elif isinstance(decision, R.Write):
            writes.append(decision)
    if refused:
        counts["failed"] = len(refused)
    counts, errors = c._write(counts, writes, deletes, full_sync=True)
    store.progress_run(run_id, counts, errors=refused + errors)
