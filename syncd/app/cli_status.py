"""``syncd status``: the running daemon at a glance.

Per integration: its state, the queue (events pending or waiting to be tried again) and the
lag of the oldest one, dead letters, the guard's count against its limit (HELD while it
holds), the last run, the next job, the preflight, and a running full sync's progress with
an ETA. Per connection: its state, its health (the last preflight check), its use of the
rate budget (requests a second over the last minute, seconds waited on the budget and on
Retry-After) and its lanes (bulk and real-time: the call in flight and for how long, the
calls queued; :mod:`syncd.connectors.lanes`). Then what stops readiness, what the last reload changed, the preflight's
problems, the guard's holds and the jobs.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from syncd.app.cli_check import print_preflight


def e(value: Any) -> str:
    """Remote text is shown as it is, never read as rich markup."""
    return escape(str(value))


def fmt_time(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def guard_cell(guard: dict | None) -> str:
    """``count/limit in 24h``, and ``HELD`` while the guard holds."""
    if not guard:
        return "-"
    limit = guard["limit"] if guard.get("limit") is not None else "off"
    cell = f"{guard['count']}/{limit} in {guard['window'] / 3600:g}h"
    return f"HELD {cell}" if guard.get("held_since") else cell


def progress_cell(i: dict[str, Any]) -> str:
    if i["state"] != "full_sync":
        return ""
    total = i.get("total")
    cell = f"{i['processed']}/{total or '?'}"
    if total:
        cell += f" {100 * i['processed'] / total:.0f}%"
    eta = i.get("eta")
    if eta and eta.get("seconds") is not None:
        cell += f" ETA {duration(eta['seconds'])} ({eta['per_s']:.0f}/s)"
    return cell


def use_cell(c: dict[str, Any]) -> str:
    use = c.get("use") or {}
    if not use:
        return "-"
    cell = f"{use['requests_per_s']:.1f}/s"
    if use.get("budget_per_s"):
        cell += f" of {use['budget_per_s']:g}/s ({100 * use['requests_per_s'] / use['budget_per_s']:.0f}%)"
    waits = [f"{what} {use[key]:.1f}s" for what, key in (("budget", "waited_budget_s"),
                                                         ("Retry-After", "waited_retry_after_s"))
             if use.get(key)]
    return cell + (f", waited {', '.join(waits)}" if waits else "")


def lanes_cell(c: dict[str, Any]) -> str:
    """Per lane (bulk, real-time): the call in flight and for how long, or idle; the
    messages queued; a lane whose actor died."""
    parts = []
    for lane, v in (c.get("lanes") or {}).items():
        busy = f"{v['call']} {duration(v.get('for_s'))}" if v.get("call") else "idle"
        queued = f", {v['queued']} queued" if v.get("queued") else ""
        dead = "" if v.get("alive", True) else " DEAD"
        parts.append(f"{lane}: {busy}{queued}{dead}")
    return "; ".join(parts) or "-"


def next_job(i: dict[str, Any]) -> str:
    jobs = sorted((j for j in i.get("next_jobs") or [] if j.get("next_run")),
                  key=lambda j: j["next_run"])
    if not jobs:
        return "-"
    return f"{jobs[0]['kind']} {jobs[0]['next_run'][:16].replace('T', ' ')}"


def print_status(status: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    ready = "ready" if status.get("ready") else "[bold red]NOT READY[/bold red]"
    console.print(f"syncd pid {e(status['pid'])}, up {duration(status['uptime'])}, {ready}, "
                  f"config {e(status['config'])}, receiver {e(status['receiver'])}")
    hooks = status.get("webhooks") or {}
    if hooks:
        reasons = ", ".join(f"{e(k)} {v}" for k, v in sorted(hooks.get("reasons", {}).items()))
        console.print(f"webhooks: received {hooks.get('received', 0)}, accepted "
                      f"{hooks.get('accepted', 0)} ({hooks.get('events', 0)} events), refused "
                      f"{sum(hooks.get('rejected', {}).values())}"
                      + (f" ({reasons})" if reasons else ""))
    for line in status.get("not_ready") or []:
        console.print(f"  not ready: {e(line)}")
    _reload(console, status)
    table = Table("connection", "kind", "state", "health", "requests (last min)", "lanes",
                  "restarts", "last failure")
    for name, c in status["connections"].items():
        table.add_row(e(name), e(c["kind"]), e(c["state"]), e(c.get("health", "-")),
                      e(use_cell(c)), e(lanes_cell(c)), e(c["restarts"]),
                      e(c["last_failure"] or ""))
    console.print(table)
    for name, c in status["connections"].items():
        # messages a connector received and discarded by its rules (e.g. a Lime consent
        # without a person): nothing was changed for them; a full sync repairs the data
        for line in (c.get("stats") or {}).get("attention") or []:  # e.g. a user to relink
            console.print(f"[yellow]{e(name)}: {e(line)}[/yellow]")
        discarded = (c.get("stats") or {}).get("discarded") or {}
        if discarded:
            console.print(f"{e(name)} discarded {sum(discarded.values())} message(s), "
                          f"nothing changed for them: " + ", ".join(
                              f"{e(k)} {v}" for k, v in sorted(discarded.items())))
        for note in (c.get("stats") or {}).get("discarded_recent") or []:  # newest first
            detail = ", ".join(f"{e(k)}={e(v)}" for k, v in sorted(note["detail"].items()))
            console.print(f"  {fmt_time(note['at'])[:19]} {e(note['reason'])}"
                          + (f" ({detail})" if detail else ""))
    table = Table("integration", "state", "progress", "queue", "oldest", "dead", "guard",
                  "last run", "next job", "preflight", "last error")
    for name, i in status["integrations"].items():
        last = i.get("last_run")
        last_run = f"#{last['id']} {last['status']} {fmt_time(last.get('ended_at'))[5:16]}" \
            if last else "-"
        state = i["state"] + (" (paused)" if i.get("paused") else "") \
            + (" needs full sync" if i.get("needs_full_sync") else "")
        queue = i.get("queue", i["inbox"].get("pending", 0))
        oldest = "-" if i.get("oldest_pending_age") is None else duration(i["oldest_pending_age"])
        table.add_row(e(name), e(state), e(progress_cell(i)), e(queue), e(oldest),
                      e(i["dead_letters"]), e(guard_cell(i.get("guard"))), e(last_run),
                      e(next_job(i)), e((i.get("preflight") or {}).get("state", "-")),
                      e(i["last_error"] or ""))
    console.print(table)
    print_preflight(console, status, e)
    for name, i in status["integrations"].items():
        if i.get("write_backs"):
            console.print(f"{e(name)}: {i['write_backs']} opt-out write-back(s) to the source "
                          f"pending (waiting, held or failing; `syncd events list` says why)")
    for name, i in status["integrations"].items():
        r = i.get("responses")
        if r:
            lag = "?" if r.get("export_lag") is None else f"{r['export_lag']:.0f} s"
            console.print(f"{e(name)} response data: next run {e(r.get('next_run') or '-')}, "
                          f"export lag {e(lag)}")
    for name, i in status["integrations"].items():
        guard = i.get("guard") or {}
        if guard.get("held_since"):
            held = ", ".join(f"{n} {k}" for k, n in sorted(guard.get("held", {}).items()))
            console.print(f"[bold red]{e(name)} holds consent changes and deletes"
                          f"[/bold red] since {fmt_time(guard['held_since'])}"
                          f" (held: {e(held or 'none yet')}): "
                          f"{e(guard.get('reason') or '')}\n"
                          f"  to let them go: {e(guard['confirm'])}")
    _links(console, status)
    if status.get("reload_errors"):
        console.print("[red]last reload was rejected; running on the previous config:[/red]")
        for line in status["reload_errors"]:
            console.print(f"  {e(line)}")
    if status.get("jobs"):
        table = Table("job", "next run", "last run")
        for job in status["jobs"]:
            table.add_row(e(job["id"]), e(job.get("next_run") or "paused"),
                          e(job.get("last_run") or "-"))
        console.print(table)


def _reload(console: Console, status: dict[str, Any]) -> None:
    """What the last applied reload changed (the log says the same)."""
    last = status.get("last_reload")
    if not last or not last.get("ok"):
        return
    parts = []
    for key, value in sorted((last.get("changes") or {}).items()):
        if isinstance(value, dict):  # the jobs: {"added": [...], "removed": [...], ...}
            parts += [f"jobs {k} {', '.join(map(str, v))}" for k, v in sorted(value.items())
                      if v and isinstance(v, list | tuple)]
        elif value and isinstance(value, list | tuple):
            parts.append(f"{key.replace('_', ' ')} {', '.join(map(str, value))}")
    changed = "; ".join(parts)
    console.print(f"last reload {fmt_time(last['at'])}: {e(changed or 'nothing changed')}")


def _links(console: Console, status: dict[str, Any]) -> None:
    """The links connectors run themselves (e.g. a user's Outlook): last round, holds, stops."""
    links = status.get("links") or {}
    if not links:
        return
    table = Table("link", "state", "last run", "created", "updated", "failed", "quiet rounds")
    for name, link in links.items():
        last = link.get("last_run") or {}
        state = "HELD" if link.get("held_since") else "STOPPED" if link.get("stopped") \
            else "running"
        run = f"#{last['id']} {last['kind']} {last['status']}" if last else "-"
        quiet = f"{link['quiet_rounds']} since, last {fmt_time(link['last_quiet'])[5:16]}" \
            if link.get("last_quiet") else "-"  # rounds that changed nothing: not runs
        table.add_row(e(name), e(state), e(run), e(last.get("created", "-")),
                      e(last.get("updated", "-")), e(last.get("failed", "-")), e(quiet))
    console.print(table)
    for name, link in links.items():
        if link.get("held_since"):
            console.print(f"[bold red]{e(name)} holds a round[/bold red] since "
                          f"{fmt_time(link['held_since'])}: {e(link.get('held') or '')}\n"
                          f"  to let it go: {e(link['confirm'])}")
        if link.get("stopped"):
            console.print(f"[bold red]{e(name)} stopped[/bold red]: {e(link['stopped'])}\n"
                          f"  once fixed: {e(link['start'])}")
