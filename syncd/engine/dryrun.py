"""Dry runs and plans: what a full sync would change, kept, shown, and applied exactly.

``syncd sync start I --dry-run`` reads every record of the source (a run of kind
``dry_run``, in a thread of its own: nothing is written anywhere but the plan) and, for the
records the rules would sync, reads the destination's profiles live (READ_PROFILES, in
batches of ``batch_size``, paced by the connection's rate budgets), then compares them
(:mod:`syncd.engine.livediff`): ``create`` (not in the destination), ``update`` (each
attribute that differs, old -> new, or unknown before; consent and tag changes), ``delete``;
an opt-out made in the destination that the consent rules keep is listed as kept. The plan
records what was read. When the destination cannot read profiles (its connector lacks
``read_profiles``), ``dry_run_read = "known"``, or a profile's read failed, the record is
decided against what syncd knows of the destination instead: the link (whether the profile
exists, the consents and tags last written), the opt-outs read, and the attributes syncd last
sent (table ``sent_attributes``, kept by :meth:`syncd.engine.explain.Journal.answered`),
and the plan says so (its ``basis`` and ``note``, each entry's ``basis``). The run's
counters (shown by ``syncd runs``) count the records as a full sync would; ``syncd runs show
RUN`` lists the plan.

``syncd sync start I --plan RUN`` applies exactly that plan (a run of kind ``plan``): each
planned record is read again; one whose fingerprint differs (the source changed since) is
refused with that reason and nothing is written for it; for an entry made from a live read,
the destination's profile is read again and one that differs from what the dry run read (the
destination changed since) is refused, naming what moved; an entry decided on what syncd
knows is refused when its decision is no longer the planned one. The others are written as a
full sync writes (the guard, links, journal and fail-fast included).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from dataclasses import asdict
from typing import Any

import structlog

from syncd.connectors.capabilities import Capability
from syncd.engine import livediff, planview
from syncd.engine import rules as R
from syncd.records import Event, ProfileState, Record

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
CREATE TABLE IF NOT EXISTS plan_basis (
    run_id INTEGER PRIMARY KEY,
    basis TEXT NOT NULL,
    note TEXT NOT NULL
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


KNOWN = ("decided against what syncd knows of the destination (the links, the opt-outs "
         "read, the attributes it last sent), NOT a live read")


def basis(daemon: Any, cfg: Any) -> tuple[str, str]:
    """``("live", note)`` when the destination's profiles are read live, else
    ``("known", why not)``."""
    conn = daemon.config.connections[cfg.destination]
    if cfg.dry_run_read == "known":
        return "known", f'dry_run_read = "known": {KNOWN}'
    if Capability.READ_PROFILES not in daemon.registry.connector(conn.kind).capabilities:
        return "known", (f"connection {cfg.destination} (kind {conn.kind}) cannot read "
                         f"profiles back (its connector lacks read_profiles): {KNOWN}")
    return "live", f"the profiles read live from connection {cfg.destination}"


def _dry_run(daemon: Any, name: str, run_id: int) -> None:
    store, cfg = daemon.store, daemon.config.integrations[name]
    rules = daemon._rules(cfg)
    cursor, status, error = None, "completed", None
    try:
        how, note = basis(daemon, cfg)
        with store._tx() as conn:
            conn.execute("INSERT OR REPLACE INTO plan_basis (run_id, basis, note) "
                         "VALUES (?, ?, ?)", (run_id, how, note))
        if how == "known":
            log.warning("dry_run.not_live", integration=name, run_id=run_id, why=note)
        while True:
            page = daemon.connection(cfg.source).read_page(cursor, cfg.page_size).get(
                timeout=CALL_TIMEOUT)
            records = list(page.records)
            states = _read_destination(daemon, cfg, rules, store.links(
                name, [r.id for r in records]), records) if how == "live" else None
            _plan_page(store, name, rules, run_id, records, page.total, states)
            cursor = page.cursor
            if cursor is None:
                break
    except Exception as exc:
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        log.error("dry_run.failed", integration=name, run_id=run_id, error=error)
    store.finish_run(run_id, status, error)
    log.info("dry_run.finished", integration=name, run_id=run_id, status=status)


def _read_destination(daemon: Any, cfg: Any, rules: R.Rules, links: dict,
                      records: list[Record]) -> dict[str, ProfileState]:
    """The destination's profiles of the records a sync would write or delete, read in
    batches of ``batch_size`` (a batch that fails leaves its records unread: known basis)."""
    keys = [r.id for r in records if not r.error and (
        r.id in links or (not r.deleted and R.matches(rules.conditions, r)))]
    return read_states(daemon.connection(cfg.destination), keys, cfg.batch_size)


def read_states(destination: Any, keys: list[str], batch: int) -> dict[str, ProfileState]:
    states: dict[str, ProfileState] = {}
    for at in range(0, len(keys), max(1, batch)):
        chunk = keys[at:at + max(1, batch)]
        try:
            found = destination.read_profiles(chunk).get(timeout=CALL_TIMEOUT)
        except Exception as exc:  # a read that failed: those records fall back, labelled
            found = [ProfileState(k, False, error=f"{type(exc).__name__}: {exc}")
                     for k in chunk]
        states.update({s.key: s for s in found})
    return states


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _plan_page(store: Any, name: str, rules: R.Rules, run_id: int, records: list[Record],
               total: int | None, states: dict[str, ProfileState] | None = None) -> None:
    counts = {"processed": len(records)}
    readable = [r for r in records if not r.error]
    errors = [(r.id, f"unreadable: {r.error}", True) for r in records if r.error]
    if errors:
        counts["failed"] = len(errors)
    ids = [r.id for r in readable]
    links = store.links(name, ids)
    optouts = store.optouts(name, ids) if rules.consents else {}
    sent = _sent(store, name, ids)
    rows, at = [], _now()
    for record in readable:
        link, state = links.get(record.id), (states or {}).get(record.id)
        if state is not None and state.error is None:
            live = livediff.diff(rules, record, link, optouts.get(record.id), state, at)
            action, details = live.action, live.details
            digest = live.write.digest if live.write else None
        else:
            decision = R.decide(rules, record, link, optouts.get(record.id))
            found = entry(decision, link, sent.get(record.id))
            action = found[0] if found else ("skipped" if isinstance(decision, R.Skip)
                                             else "unchanged")
            details = {**found[1], "basis": "known"} if found else {}
            if found and state is not None:
                details["read_error"] = state.error
            digest = decision.digest if isinstance(decision, R.Write) else None
        outcome = {"create": "created", "update": "updated", "delete": "deleted"}.get(
            action, action)
        counts[outcome] = counts.get(outcome, 0) + 1
        if details:
            rows.append((run_id, record.id, action, fingerprint(record), digest,
                         json.dumps(details, default=str)))
    with store._tx() as conn:
        conn.executemany("INSERT OR REPLACE INTO plan (run_id, record_id, action, fingerprint, "
                         "digest, data) VALUES (?, ?, ?, ?, ?, ?)", rows)
    store.progress_run(run_id, counts, total=total, errors=errors)


def plan(store: Any, run_id: int, limit: int = 1000) -> dict[str, Any]:
    """The plan of dry run ``run_id``: what it compared with (``basis``, ``note``), counts by
    action and change, and its entries."""
    migrate(store)
    rows = store._read("SELECT record_id, action, data FROM plan WHERE run_id=? "
                       "ORDER BY action, record_id", (run_id,))
    found = store._read("SELECT basis, note FROM plan_basis WHERE run_id=?", (run_id,))
    how, note = found[0] if found else ("known", KNOWN)
    summary: dict[str, int] = {}
    entries: list[dict[str, Any]] = []
    changes = 0

    def count(name: str) -> None:
        summary[name] = summary.get(name, 0) + 1

    for rid, action, data in rows:
        details = json.loads(data)
        if action != "unchanged":
            changes += 1
            count(action)
        if details.get("basis") == "known" and how == "live":
            count("not read live")
        for attr in details.get("attributes", {}) if action == "update" else ():
            count(f"attribute {attr}")
        if action == "update" and "email" in details:
            count("email")
        for flip in details.get("consent_changes", details.get("flips", [])):
            count(f"consent {flip}")
        for tag in details.get("tag_changes", {}):
            count(f"tag {tag}")
        for kept in details.get("kept", {}):
            count(f"opt-out kept {kept}")
        if len(entries) < limit:
            entries.append({"record_id": rid, "action": action, **details})
    return {"basis": how, "note": note, "summary": summary, "entries": entries,
            "total": changes, "listed": len(rows)}


def render(found: dict[str, Any], limit: int = 50) -> list[str]:
    """``syncd runs show`` lines for a plan."""
    return planview.render(found, limit)


# -- applying a plan (in the coordinator's actor) --------------------------------------------


def apply(coordinator: Any, plan_run: int, run_id: int) -> None:
    """Apply dry run ``plan_run``'s plan as run ``run_id`` (see the module docstring)."""
    c, store = coordinator, coordinator.store
    status, error = "completed", None
    try:
        rows = store._read("SELECT record_id, action, fingerprint, digest, data FROM plan "
                           "WHERE run_id=? AND action != 'unchanged' ORDER BY record_id",
                           (plan_run,))
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
    planned = {r[0]: json.loads(r[4]) for r in rows}
    live_ids = [rid for rid in ids if planned[rid].get("basis") == "live"]
    states = read_states(c.destination, live_ids, c.integration.batch_size) if live_ids else {}
    counts: dict[str, int] = {"processed": len(rows)}
    refused: list[tuple[str, str, bool]] = []
    writes: list[R.Write] = []
    deletes: list[R.Delete] = []
    at = _now()
    for rid, action, printed, digest, _ in rows:
        record = by_id.get(rid)
        if record is None or record.error or fingerprint(record) != printed:
            refused.append((rid, f"the source changed since the plan (run #{plan_run}); "
                                 f"make a new one with --dry-run", False))
            continue
        if rid in states:
            why = planview.destination_moved(c.rules, planned[rid], states[rid], plan_run)
            live = livediff.diff(c.rules, record, links.get(rid), optouts.get(rid),
                                 states[rid], at) if why is None else None
            if live is not None and live.action != action:
                why = (f"the destination changed since the plan (run #{plan_run}): it would "
                       f"now be {live.action}")
            if why is not None or live is None:
                refused.append((rid, why or "the destination changed since the plan", False))
            elif live.write is not None:
                writes.append(live.write)
            elif live.delete is not None:
                deletes.append(live.delete)
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
