"""The size of the journal behind ``syncd explain``: rows and bytes per 1,000 records of a full
sync from the Tribe emulator into the APSIS emulator, through a real daemon, once through the
per-profile path and once through bulk imports; split into what the HTTP calls add (inline
in the answers, and stored once in ``journal_call`` for a call made for many records).

    python -m bench journal [--contacts 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3

from bench.common import (
    base_config,
    daemon_process,
    destination_config,
    emulator_process,
    run_full_sync,
    sync_rules,
)


def _size(tmp: str) -> dict[str, float]:
    db = sqlite3.connect(os.path.join(tmp, "state", "syncd.db"))
    try:
        journal = db.execute("SELECT kind, data FROM journal").fetchall()
        shared = db.execute("SELECT data FROM journal_call").fetchall()
    finally:
        db.close()
    calls_inline = 0
    for _, data in journal:
        made = json.loads(data).get("calls")
        if made:
            calls_inline += len(json.dumps(made)) + len(', "calls": ')
    return {"rows": len(journal), "bytes": sum(len(d) for _, d in journal),
            "call_bytes_in_answers": calls_inline, "call_rows": len(shared),
            "call_row_bytes": sum(len(d) for (d,) in shared)}


def measure(contacts: int, bulk: bool) -> dict:
    with emulator_process("tribe", contacts=contacts) as (src_cls, src, _, _), \
            emulator_process("apsis", settings={"requests_per_second": 1e9,
                                                "per_key_per_second": 1e9}) as (
                dst_cls, dst, _, _):
        rules = sync_rules(src_cls, page_size=200)
        rules.pop("response_events", None)
        if bulk:
            rules.update(bulk_threshold=10, bulk_batch=5000)
        config = base_config(src_cls.sandbox_config(src),
                             destination_config(dst_cls, dst, "unlimited"), rules)
        with daemon_process(config) as (_, client, tmp):
            run = run_full_sync(client)
            size = _size(tmp)
    records = max(1, int(run.get("processed") or contacts))
    per = 1000 / records
    return {"path": "bulk" if bulk else "per-profile", "status": run["status"],
            "records": records, **{f"{k}_per_1000": round(v * per) for k, v in size.items()}}


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench journal")
    parser.add_argument("--contacts", type=int, default=2000)
    args = parser.parse_args(argv)
    table = []
    results = []
    for bulk in (False, True):
        r = measure(args.contacts, bulk)
        results.append(r)
        print(json.dumps(r), flush=True)
        for key in ("rows", "bytes", "call_bytes_in_answers", "call_rows", "call_row_bytes"):
            table.append(("journal", f"{r['path']} {key} per 1,000 records",
                          r[f"{key}_per_1000"], "-", None))
    return {"results": results, "table": table}
