"""The sandbox's response-data and task scenario (``syncd sandbox``, seed 000): recipients open
and click a mailing in the destination's emulator, a response-data run writes each event to
the CRM once (a second run writes nothing again), and an automation flow's call creates one
task, also when the flow calls twice. Vendor-agnostic: it uses the emulators' own helpers
when they have them (``record_event``, ``send_automation_call``, ``activities``, ``tasks``)."""

from __future__ import annotations

import time
from typing import Any

ROUNDS = (("OPENED", "opened"), ("CLICKED", "clicked"))


def _wait_run(daemon, run_id: int, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = daemon.control.run(run_id)
        if run["status"] != "running" or time.monotonic() > deadline:
            return run
        time.sleep(0.05)


def responses_scenario(console, daemon, source, dst_emu) -> bool:
    """Show and check response data and a task for one source; True when all landed once
    (or when this source or destination has no such thing)."""
    rules = source.rules
    ok = True
    if rules.get("response_events") and hasattr(dst_emu, "record_event") \
            and hasattr(source.emu, "activities"):
        ok = _responses(console, daemon, source, dst_emu) and ok
    if rules.get("tasks_secret") and hasattr(dst_emu, "send_automation_call") \
            and hasattr(source.emu, "tasks"):
        ok = _task(console, daemon, source, dst_emu) and ok
    return ok


def _synced(daemon, source, dst_emu, n: int) -> list[str]:
    keys = sorted(dst_emu.snapshot())
    linked = daemon.store.links(source.integration, keys)
    return [k for k in keys if k in linked][:n]


def _responses(console, daemon, source, dst_emu) -> bool:
    ids = _synced(daemon, source, dst_emu, 3)
    before = len(source.emu.activities())
    for record_id in ids:
        for kind, _ in ROUNDS:
            dst_emu.record_event(record_id, kind, duplicate=True)
    console.print(f"  {len(ids)} recipients opened and clicked a mailing "
                  f"(each event exported twice, as APSIS does on retries)")
    run = _wait_run(daemon, daemon.control.run_responses(source.integration)["run_id"])
    made = len(source.emu.activities()) - before
    counts = daemon.control.run(run["id"]).get("counts", {})
    shown = ", ".join(f"{counts.get(f'email_{v}', 0)} {v}" for _, v in ROUNDS)
    console.print(f"  response data run #{run['id']} {run['status']}: {shown}; "
                  f"{made} activities in {source.kind}, duplicates dropped "
                  f"{counts.get('duplicate_rows', 0)}")
    for activity in source.emu.activities()[-2:]:
        console.print(f"    - {activity.get('Subject')} ({activity.get('StartDate')})")
    again = _wait_run(daemon, daemon.control.run_responses(source.integration)["run_id"])
    extra = len(source.emu.activities()) - before - made
    good = run["status"] == again["status"] == "completed" and made == run["created"] \
        and all(counts.get(f"email_{v}", 0) == len(ids) for _, v in ROUNDS) \
        and extra == 0 and again["created"] == 0
    console.print(("[green]" if good else "[red]") + f"  every open and click landed once "
                  f"(a second run wrote {extra})" + ("[/green]" if good else "[/red]"))
    return good


def _task(console, daemon, source, dst_emu) -> bool:
    ids = _synced(daemon, source, dst_emu, 1)
    if not ids:
        return False
    secret = source.rules["tasks_secret"]
    url = f"{daemon.receiver.url}/tasks/{source.integration}"
    call = {"idempotency_key": "sandbox-flow-1", "contact": ids[0],
            "campaign": "Sandbox newsletter", "description": "Clicked the spring offer"}
    before = len(source.emu.tasks())
    status, body = dst_emu.send_automation_call(url, secret, call)
    again, _ = dst_emu.send_automation_call(url, secret, call)  # the flow retries
    tasks = source.emu.tasks()[before:]
    console.print(f"  an automation flow called {url}: {status} then {again} (retried); "
                  f"{len(tasks)} task in {source.kind}"
                  + (f": {tasks[0].get('Subject')!r} for {ids[0]}" if tasks else ""))
    good = status == 201 and again == 200 and len(tasks) == 1
    if not good:
        console.print(f"[red]  the task was not created once: {body}[/red]")
    return good
