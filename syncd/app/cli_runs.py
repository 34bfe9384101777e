"""The CLI's commands about runs and events of a running daemon: sync start, confirm and
cancel, runs, events, response data, overview imports."""

from __future__ import annotations

import sys
import time

from syncd.app import cli_common as common
from syncd.app.cli_common import _fmt_time, _print_json


def _wait_with_progress(client, integration: str, run_id: int) -> dict:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), transient=False) as bar:
        task = bar.add_task(f"full sync {integration} #{run_id}", total=None)
        while True:
            run = client.run(run_id)
            bar.update(task, completed=run["processed"], total=run["total"])
            if run["status"] != "running":
                return run
            time.sleep(0.25)


def _print_run(run: dict) -> None:
    print(f"run #{run['id']} {run['integration']} {run['kind']}: {run['status']}")
    print(f"  started {_fmt_time(run['started_at'])}, ended {_fmt_time(run['ended_at'])}")
    print(f"  processed {run['processed']} of {run['total'] if run['total'] is not None else '?'}"
          f": created {run['created']}, updated {run['updated']}, unchanged "
          f"{run['unchanged']}, skipped by conditions {run['skipped']}, failed {run['failed']}")
    if run.get("counts"):
        print("  counts: " + ", ".join(f"{k} {v}" for k, v in sorted(run["counts"].items())))
    if run.get("error"):
        print(f"  error: {run['error']}")
    if run.get("plan"):
        from syncd.engine.dryrun import render

        print("\n".join(render(run["plan"])))
    for err in run.get("errors", [])[:50]:
        print(f"  failed {err['record_id']}: {err['reason']}")
    if len(run.get("errors", [])) > 50:
        print(f"  ... and {len(run['errors']) - 50} more")


def cmd_sync_start(args) -> int:
    client = common.admin_client(args)
    result = client.start_sync(args.integration, confirm=args.confirm, dry_run=args.dry_run,
                               plan=args.plan)
    run_id = result["run_id"]
    if run_id is None and result.get("link"):  # a connector's link: its next round runs
        print(f"{args.integration} runs a whole round now; see `syncd runs "
              f"{args.integration}`")
        return 0
    what = ("dry run" if args.dry_run else f"plan #{args.plan}" if args.plan is not None
            else "full sync")
    print(f"{what} of {args.integration} started: run #{run_id}"
          + (f" (see it with `syncd runs show {run_id}`)" if args.dry_run else ""))
    if not args.wait:
        return 0
    run = _wait_with_progress(client, args.integration, run_id)
    _print_run(client.run(run_id))
    return 0 if run["status"] == "completed" else 1


def cmd_confirm(args) -> int:
    result = common.admin_client(args).confirm(args.integration)
    print(f"confirmed {args.integration}: the guard's count starts again; "
          f"{result['records']} held record(s) are read again and applied, "
          f"{result['write_backs']} held write-back(s) go at the next consent poll")
    return 0


def cmd_sync_cancel(args) -> int:
    result = common.admin_client(args).cancel_sync(args.integration)
    print(f"cancelling run #{result['run_id']} of {args.integration}")
    return 0


def cmd_runs(args) -> int:
    from rich.console import Console
    from rich.table import Table

    client = common.admin_client(args)
    if args.integration == "show":
        if args.run_id is None:
            print("syncd runs show RUN: give a run id", file=sys.stderr)
            return 2
        run = client.run(args.run_id)
        if args.json:
            _print_json(run)
        else:
            _print_run(run)
        return 0
    runs = client.runs(args.integration, args.limit)
    if args.json:
        _print_json(runs)
        return 0
    table = Table("run", "integration", "kind", "status", "started", "processed", "created",
                  "updated", "unchanged", "skipped", "failed")
    for r in runs:
        table.add_row(str(r["id"]), r["integration"], r["kind"], r["status"],
                      _fmt_time(r["started_at"]), str(r["processed"]), str(r["created"]),
                      str(r["updated"]), str(r["unchanged"]), str(r["skipped"]),
                      str(r["failed"]))
    Console().print(table)
    return 0


def cmd_events_list(args) -> int:
    events = common.admin_client(args).events(failed=args.failed, integration=args.integration)
    if args.json:
        _print_json(events)
        return 0
    if not events:
        print("no failed events" if args.failed else "no events waiting to be applied")
    for e in events:
        state = "failed for good" if e.get("status") == "dead" else "waiting"
        if e.get("topics"):  # a write-back of the destination's opt-outs (writeback.py)
            state += f" ({', '.join(e['topics'])})"
        print(f"#{e['id']} {e['integration']} {e['kind']} {e['record_id']} {state} "
              f"(received {_fmt_time(e['received_at'])}, {e['attempts']} attempts)"
              + (f": {e['error']}" if e["error"] else ""))
    return 0


def cmd_events_retry(args) -> int:
    result = common.admin_client(args).retry_events(args.ids or None, args.integration)
    print(f"{result['requeued']} event(s) queued again")
    return 0


def cmd_responses_run(args) -> int:
    result = common.admin_client(args).run_responses(args.integration)
    print(f"response-data run #{result['run_id']} of {result['integration']} started; see "
          f"`syncd runs show {result['run_id']}`")
    return 0


def cmd_overview_import(args) -> int:
    result = common.admin_client(args).import_overview(args.integration, args.overview)
    print(f"importing overview {result['overview']} of {result['integration']}; "
          f"see `syncd runs {result['integration']}`")
    return 0
