"""``syncd sandbox``: the whole product on loopback, against the partners' emulators.

It starts the source (CRM) emulators and the destination emulator with seeded contacts, writes
a config pointing at them into a temporary folder, starts a real daemon (receiver, admin
endpoint, actors, SQLite state), runs the full syncs at once with progress bars, makes a few
changes in each CRM *through its API* so that they arrive as real signed webhooks, and shows
what happened.

One daemon, several CRMs: by default a Tribe and a Lime integration write into the same APSIS
account through one APSIS connection (one rate budget, shared), each with its own rules and
state. With ``--once`` it then checks that the destination holds exactly what each source
holds under its integration's rules, and exits 0 only if it does.

The sandbox knows connectors only by kind, through the plugin registry; what to map comes
from each source connector's ``sandbox_rules()``.
"""

from __future__ import annotations

import importlib
import os
import random
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any

import tomli_w
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from syncd.app import logs
from syncd.app.sandbox_check import INTEGRATION, compare, consent_scenario
from syncd.app.sandbox_check import wait as _wait
from syncd.app.sandbox_responses import responses_scenario
from syncd.connectors import plugins
from syncd.connectors.connector import Connector

__all__ = ["INTEGRATION", "build_config", "compare", "load_emulator", "main"]

#: The CRMs the sandbox runs by default (those whose plugin is loaded).
DEFAULT_SOURCES = ("tribe", "lime")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_emulator(cls: type[Connector]):
    module, _, name = (cls.emulator or "").partition(":")
    if not module:
        raise SystemExit(f"syncd: connector {cls.kind} ships no emulator")
    return getattr(importlib.import_module(module), name)


def build_config(state_dir: str, source: dict, destination: dict, rules: dict,
                 receiver_port: int, admin_port: int,
                 more_sources: Sequence[tuple[str, dict, dict]] = ()) -> dict[str, Any]:
    """The config: ``source`` as connection ``crm`` in integration ``sandbox``; each of
    ``more_sources`` (``(kind, options, rules)``) as ``crm-<kind>`` in ``sandbox-<kind>``;
    all into the one destination connection ``marketing``."""
    integration: dict[str, Any] = {"source": "crm", "destination": "marketing"}
    integration.update(rules)
    connections = {"crm": source, "marketing": destination}
    integrations = {INTEGRATION: integration}
    for kind, options, extra in more_sources:
        connections[f"crm-{kind}"] = options
        integrations[f"{INTEGRATION}-{kind}"] = {"source": f"crm-{kind}",
                                                 "destination": "marketing", **extra}
    return {
        "daemon": {"state_dir": state_dir, "log_level": "info", "log_format": "json",
                   "stop_timeout": 10.0},
        "receiver": {"host": "127.0.0.1", "port": receiver_port,
                     "public_url": f"http://127.0.0.1:{receiver_port}"},
        "admin": {"host": "127.0.0.1", "port": admin_port},
        "connections": connections,
        "integrations": integrations,
    }


class _Source:
    """One CRM of the sandbox: its connector, emulator, connection and integration."""

    def __init__(self, index: int, kind: str, cls: type[Connector]):
        self.kind, self.cls = kind, cls
        self.emu = load_emulator(cls)(seed=1 + 10 * index)
        self.connection = "crm" if index == 0 else f"crm-{kind}"
        self.integration = INTEGRATION if index == 0 else f"{INTEGRATION}-{kind}"
        self.options: dict[str, Any] = {}
        self.rules = cls.sandbox_rules()


def _connectors(console, registry, kinds: list[str], explicit: bool, destination_kind: str):
    """The source classes to run (a default source whose plugin is missing is left out, an
    explicit one is an error) and the destination class; None when one cannot run."""
    found = []
    for kind in kinds:
        cls = registry.connector(kind)
        if cls is None and not explicit:
            console.print(f"  ({kind}: its connector is not loaded; left out)")
            continue
        found.append((kind, cls))
    found.append((destination_kind, registry.connector(destination_kind)))
    for kind, cls in found:
        if cls is None:
            status = next((p for p in registry.plugins if kind in (p.name, *p.kinds)), None)
            reason = f": {status.reason}" if status and status.reason else ""
            console.print(f"[red]syncd: the {kind} connector is not available{reason}[/red]")
            return None
    if len(found) < 2:
        console.print("[red]syncd: no CRM connector is available for the sandbox[/red]")
        return None
    return [k for k, _ in found[:-1]], [c for _, c in found[:-1]], found[-1][1]


def _full_syncs(console, daemon, sources: list[_Source]) -> bool:
    """Start every integration's full sync at once (they share the destination's budget)
    and show their progress; True when all completed."""
    runs = {s.integration: daemon.control.start_sync(s.integration)["run_id"] for s in sources}
    with Progress("  [progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:
        tasks = {s.integration: bar.add_task(f"full sync #{runs[s.integration]} {s.kind}",
                                             total=daemon.progress[s.integration].total)
                 for s in sources}
        while any(daemon.progress[i].state == "full_sync" for i in runs):
            for name, task in tasks.items():
                p = daemon.progress[name]
                bar.update(task, completed=p.processed, total=p.total)
            time.sleep(0.1)
        for name, task in tasks.items():
            p = daemon.progress[name]
            bar.update(task, completed=p.processed, total=p.total or p.processed)
    ok = True
    for s in sources:
        run = daemon.control.run(runs[s.integration])
        console.print(f"  {s.kind}: full sync #{run['id']} {run['status']}: created "
                      f"{run['created']}, updated {run['updated']}, unchanged "
                      f"{run['unchanged']}, skipped by conditions {run['skipped']}, failed "
                      f"{run['failed']} in {run['ended_at'] - run['started_at']:.1f} s")
        ok = ok and run["status"] == "completed"
    return ok


def _changes(console, daemon, sources: list[_Source], changes: int) -> None:
    rng = random.Random(7)
    for s in sources:
        progress = daemon.progress[s.integration]
        applied_before = progress.events_applied
        console.print(f"  making {changes} change(s) in {s.kind} through its API:")
        for _ in range(changes):
            console.print(f"    - {s.emu.mutate(rng)}")
        if hasattr(s.emu, "wait_deliveries"):
            s.emu.wait_deliveries(30)
        settled = _wait(lambda s=s: daemon.store.pending_count(s.integration) == 0, 60)
        daemon.supervisor.coordinator(s.integration).ping().get(timeout=60)  # its last batch counted
        console.print(f"  {s.kind} webhooks applied in real time: "
                      f"{progress.events_applied - applied_before} event(s)"
                      + ("" if settled else " [red](some still pending)[/red]"))


def _check(console, daemon, sources: list[_Source], dst_cls, dst_emu,
           destination_kind: str) -> bool:
    snapshot = dst_emu.snapshot()
    ok = True
    for s in sources:
        others = {k for o in sources if o is not s
                  for k in daemon.store.links(o.integration, list(snapshot))}
        problems = compare(daemon, s.cls, dst_cls, s.options, snapshot,
                           getattr(dst_emu, "consents", None), getattr(dst_emu, "tags", None),
                           integration_name=s.integration, others=others)
        if problems:
            console.print(f"[red]  {len(problems)} difference(s) between {s.kind} and "
                          f"{destination_kind}:[/red]")
            for line in problems[:20]:
                console.print(f"    {line}")
            ok = False
        else:
            mine = len(set(snapshot) - others)
            console.print(f"[green]  {destination_kind} holds exactly what {s.kind} holds "
                          f"under its rules ({mine:,} profiles)[/green]")
    violations = dst_emu.stats().get("retry_after_violations", 0)
    console.print(f"  {destination_kind}: {len(snapshot):,} profiles from {len(sources)} "
                  f"CRM(s) through one connection; requests sent before a Retry-After "
                  f"ran out: {violations}")
    return ok and not violations


def _companions(console, registry, srcs: list[_Source], config: dict, tmp: str) -> list:
    """Connectors whose class offers ``sandbox_companion(sources, tmp)`` (a connection that
    links to the sources itself, e.g. each Tribe user's Outlook) join the sandbox: their
    connection goes into the config, their ``scenario`` runs after the check."""
    sources = {s.kind: (s.emu, s.connection) for s in srcs}
    found = []
    for kind, cls in sorted(registry.connectors.items()):
        make = getattr(cls, "sandbox_companion", None)
        companion = make(sources, tmp) if make else None
        if companion is None:
            continue
        companion.prepare()
        name = f"{kind}-link"
        config["connections"][name] = companion.options
        found.append((name, companion))
        console.print(f"  {kind}: companion emulators up, connection {name}")
    return found


def main(contacts: int = 2000, once: bool = False, changes: int = 5, keep: bool = False,
         source_kind: str | None = None, destination_kind: str = "apsis",
         sources: list[str] | None = None) -> int:
    console = Console(stderr=False, soft_wrap=True)
    registry = plugins.load()
    explicit = bool(sources or source_kind)
    kinds = list(sources or ([source_kind] if source_kind else DEFAULT_SOURCES))
    picked = _connectors(console, registry, kinds, explicit, destination_kind)
    if picked is None:
        return 1
    kinds, classes, dst_cls = picked

    tmp = tempfile.mkdtemp(prefix="syncd-sandbox-")
    log_path = os.path.join(tmp, "syncd.log")
    log_file = open(log_path, "a", buffering=1)
    logs.configure("info", "json", stream=log_file)

    srcs = [_Source(i, kind, cls) for i, (kind, cls) in enumerate(zip(kinds, classes,
                                                                        strict=True))]
    dst_emu = load_emulator(dst_cls)(seed=2)
    console.print(f"[bold]syncd sandbox[/bold]: {' + '.join(kinds)} → {destination_kind}, "
                  f"{contacts:,} contacts each, state in {tmp}")
    for s in srcs:
        s.emu.seed(contacts, seed=1)
        s.emu.start()
        s.options = s.cls.sandbox_config(s.emu)
        console.print(f"  {s.kind} emulator on {s.emu.url}")
    dst_emu.start()
    console.print(f"  {destination_kind} emulator on {dst_emu.url}")

    from syncd.app.daemon import Daemon

    config = build_config(os.path.join(tmp, "state"), srcs[0].options,
                          dst_cls.sandbox_config(dst_emu), srcs[0].rules, _free_port(),
                          _free_port(), [(s.kind, s.options, s.rules) for s in srcs[1:]])
    companions = _companions(console, registry, srcs, config, tmp)
    config_path = os.path.join(tmp, "syncd.toml")
    with open(config_path, "wb") as fh:
        tomli_w.dump(config, fh)
    daemon = Daemon(config_path, registry=registry, install_signals=False,
                    configure_logging=False)
    result: dict[str, int] = {}
    thread = threading.Thread(target=lambda: result.setdefault("rc", daemon.serve()),
                              name="daemon", daemon=True)
    thread.start()
    ok = False
    try:
        if not _wait(lambda: daemon.started.is_set() or daemon.stopped.is_set(), 30):
            console.print("[red]the daemon did not start; see " + log_path + "[/red]")
            return 1
        if not daemon.started.is_set():
            console.print(f"[red]the daemon failed to start; see {log_path}[/red]")
            return 1
        receiver = daemon.receiver.url if daemon.receiver else "?"
        console.print(f"  daemon up: receiver {receiver}, config {config_path}")
        for s in srcs:
            if hasattr(s.emu, "webhooks"):
                _wait(lambda s=s: bool(s.emu.webhooks()), 10)

        # 1. the full syncs, at once, into the one destination
        if not _full_syncs(console, daemon, srcs):
            return 1
        # 2. changes in each CRM, arriving as real webhooks
        _changes(console, daemon, srcs, changes)
        # 3. consents both ways (and a selection becoming a tag)
        for s in srcs:
            if s.rules.get("consents") and hasattr(dst_emu, "unsubscribe"):
                console.print(f"  {s.kind}: consents both ways"
                              + (", a selection becoming a tag:" if s.rules.get("selections")
                                 else ":"))
                consent_scenario(console, daemon, s.cls, s.options, dst_emu, s.rules,
                                 integration_name=s.integration)
        # 4. response data back to the CRM, and a task from an automation flow
        answered = all([responses_scenario(console, daemon, s, dst_emu)  # noqa: C419
                        for s in srcs])  # every scenario runs, no short-circuit
        # 5. the check
        ok = _check(console, daemon, srcs, dst_cls, dst_emu, destination_kind) and answered
        # 6. connectors that link to the sources themselves (e.g. each user's Outlook)
        for name, companion in companions:
            ok = companion.scenario(console, daemon, name, _wait) and ok
        if not once:
            console.print(f"  the daemon keeps running: try `syncd status -c {config_path}`, "
                          f"Ctrl-C stops it")
            try:
                while thread.is_alive():
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
        return 0 if ok else 1
    finally:
        daemon.request_stop()
        thread.join(30)
        for s in srcs:
            s.emu.stop()
        dst_emu.stop()
        for _, companion in companions:
            companion.stop()
        log_file.close()
        if keep or not ok:
            console.print(f"  state and logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        sys.stdout.flush()
