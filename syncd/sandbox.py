"""``syncd sandbox``: the whole product on loopback, against the partners' emulators.

It starts the source (CRM) and destination emulators with seeded contacts, writes a config
pointing at them into a temporary folder, starts a real daemon (receiver, admin endpoint,
actors, SQLite state), runs a full sync with a progress bar, makes a few changes in the CRM
*through its API* so that they arrive as real signed webhooks, and shows what happened.

With ``--once`` it then checks that the destination holds exactly what the source holds
under the configured rules, and exits 0 only if it does.

The sandbox knows connectors only by kind, through the plugin registry; what to map comes
from the source connector's ``sandbox_rules()``.
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
from typing import Any

import tomli_w
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from syncd import logs, plugins
from syncd.config.model import Condition
from syncd.connector import Connector
from syncd.records import Event
from syncd.rules import Rules, expected_view, matches, to_profile

INTEGRATION = "sandbox"


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
                 receiver_port: int, admin_port: int) -> dict[str, Any]:
    integration: dict[str, Any] = {"source": "crm", "destination": "marketing"}
    integration.update(rules)
    return {
        "daemon": {"state_dir": state_dir, "log_level": "info", "log_format": "json",
                   "stop_timeout": 10.0},
        "receiver": {"host": "127.0.0.1", "port": receiver_port,
                     "public_url": f"http://127.0.0.1:{receiver_port}"},
        "admin": {"host": "127.0.0.1", "port": admin_port},
        "connections": {"crm": source, "marketing": destination},
        "integrations": {INTEGRATION: integration},
    }


def _wait(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def _consent_problems(rules: Rules, record, consents_of, tags_of) -> list[str]:
    """Consents opted in exactly where the source shows the label (opt-outs made in the
    destination were written back), tags set exactly where it shows the selection."""
    problems = []
    if consents_of is not None and rules.consents:
        held = consents_of(record.id)
        for m in rules.consents:
            state = next((v for (topic, channel), v in held.items()
                          if topic == m.topic and channel.endswith(m.channel)), None)
            want = m.label in record.labels
            if (state == "opt-in") != want:
                problems.append(f"{record.id}: consent {m.topic} is {state or 'absent'}, "
                                f"the label {m.label!r} is {'set' if want else 'not set'}")
    if tags_of is not None and rules.selections:
        tags = tags_of(record.id)
        for selection, tag in rules.selections.items():
            if bool(tags.get(tag)) != (selection in record.selections):
                problems.append(f"{record.id}: tag {tag} is {bool(tags.get(tag))}, selection "
                                f"{selection!r} says {selection in record.selections}")
    return problems


def compare(daemon, src_cls: type[Connector], dst_cls: type[Connector], source_options: dict,
            snapshot: dict[str, dict], consents_of=None, tags_of=None) -> list[str]:
    """Differences between the destination and the source under the rules (empty: equal).

    Every record that matches the conditions must have a profile equal to its mapping; a
    profile of a record that does not match now is allowed only if syncd synced it while it
    matched (seed 001: profiles are not deleted when a contact stops matching)."""
    integration = daemon.config.integrations[INTEGRATION]
    rules = Rules.from_integration(integration, dst_cls.canonical_attribute)
    reader = src_cls("compare", source_options)
    reader.start()
    problems: list[str] = []
    seen: set[str] = set()
    try:
        cursor = None
        while True:
            page = reader.read_page(cursor, 500)
            for record in page.records:
                seen.add(record.id)
                actual = snapshot.get(record.id)
                if matches(rules.conditions, record):
                    want = expected_view(to_profile(rules, record), dst_cls.email_attribute,
                                         dst_cls.id_attribute)
                    problems.extend(_consent_problems(rules, record, consents_of, tags_of))
                    if actual is None:
                        problems.append(f"{record.id}: missing in the destination")
                    elif actual != want:
                        diff = {k: (actual.get(k), want.get(k))
                                for k in set(actual) | set(want) if actual.get(k) != want.get(k)}
                        problems.append(f"{record.id}: differs (have, want): {diff}")
                elif actual is not None and not daemon.store.links(INTEGRATION, [record.id]):
                    problems.append(f"{record.id}: in the destination but never matched")
            cursor = page.cursor
            if cursor is None:
                break
    finally:
        reader.stop()
    for key in set(snapshot) - seen:
        problems.append(f"{key}: in the destination but not in the source")
    return problems


def _pick(reader, predicate):
    cursor = None
    while True:
        page = reader.read_page(cursor, 500)
        for record in page.records:
            if predicate(record):
                return record
        cursor = page.cursor
        if cursor is None:
            return None


def _consent_scenario(console, daemon, src_cls, source_options, dst_emu, rules) -> None:
    """An unsubscribe in the destination arriving in the source; a label set in the source
    arriving as an opt-in; a selection becoming a tag. Each change is made as a user would:
    the unsubscribe in the destination, the labels through the source's API."""
    consent = rules["consents"][0]
    label, topic = consent["label"], consent["topic"]
    conditions = [Condition(k, v) for k, v in rules.get("conditions", {}).items()]
    user = src_cls("sandbox-user", source_options)  # a CRM user editing through the API
    user.start()
    coordinator = daemon._coordinator(INTEGRATION)
    try:
        def fetch(record_id):
            return user.read_records([Event(record_id)])[0]

        opted_in = _pick(user, lambda r: label in r.labels and matches(conditions, r))
        if opted_in is not None:
            dst_emu.unsubscribe(opted_in.id, topic)

            def written_back() -> bool:
                # what the next scheduled poll would do, now (an event recorded in the very
                # millisecond a poll ends comes with the following one)
                coordinator.run_job("consent_changes", {}).get(timeout=300)
                return label not in fetch(opted_in.id).labels

            ok = _wait(written_back, 30, interval=0.2)
            console.print(f"    - {opted_in.id} unsubscribed from {topic} in the destination: "
                          + ("the label " + repr(label) + " is gone in the source" if ok
                             else "[red]not written back[/red]"))
        without = _pick(user, lambda r: label not in r.labels and matches(conditions, r)
                        and r.id != getattr(opted_in, "id", None))
        if without is not None:
            user.write_consents(without.id, {label: True})
            ok = _wait(lambda: "opt-in" in {v for (t, _), v in dst_emu.consents(without.id)
                                            .items() if t == topic}, 30)
            console.print(f"    - label {label!r} set on {without.id} in the source: "
                          + ("opted in to " + topic if ok else "[red]not arrived[/red]"))
        selection, tag = next(iter(rules.get("selections", {}).items()), (None, None))
        if selection:
            outside = _pick(user, lambda r: selection not in r.selections
                            and matches(conditions, r))
            if outside is not None:
                user.write_consents(outside.id, {selection: True})
                ok = _wait(lambda: bool(dst_emu.tags(outside.id).get(tag)), 30)
                console.print(f"    - {outside.id} joined the selection {selection!r}: "
                              + (f"tagged {tag!r}" if ok else "[red]not tagged[/red]"))
        _wait(lambda: daemon.store.pending_count(INTEGRATION) == 0, 60)
    finally:
        user.stop()


def main(contacts: int = 2000, once: bool = False, changes: int = 5, keep: bool = False,
         source_kind: str = "tribe", destination_kind: str = "apsis") -> int:
    console = Console(stderr=False, soft_wrap=True)
    registry = plugins.load()
    src_cls = registry.connector(source_kind)
    dst_cls = registry.connector(destination_kind)
    for kind, cls in ((source_kind, src_cls), (destination_kind, dst_cls)):
        if cls is None:
            status = next((p for p in registry.plugins if kind in (p.name, *p.kinds)), None)
            reason = f": {status.reason}" if status and status.reason else ""
            console.print(f"[red]syncd: the {kind} connector is not available{reason}[/red]")
            return 1

    tmp = tempfile.mkdtemp(prefix="syncd-sandbox-")
    log_path = os.path.join(tmp, "syncd.log")
    log_file = open(log_path, "a", buffering=1)  # noqa: SIM115 - closed in finally
    logs.configure("info", "json", stream=log_file)

    src_emu = load_emulator(src_cls)(seed=1)
    dst_emu = load_emulator(dst_cls)(seed=2)
    console.print(f"[bold]syncd sandbox[/bold]: {source_kind} → {destination_kind}, "
                  f"{contacts:,} contacts, state in {tmp}")
    src_emu.seed(contacts, seed=1)
    src_emu.start()
    dst_emu.start()
    console.print(f"  {source_kind} emulator on {src_emu.url}, {destination_kind} emulator "
                  f"on {dst_emu.url}")

    from syncd.daemon import Daemon

    source_options = src_cls.sandbox_config(src_emu)
    config = build_config(os.path.join(tmp, "state"), source_options,
                          dst_cls.sandbox_config(dst_emu), src_cls.sandbox_rules(),
                          _free_port(), _free_port())
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
        console.print(f"  daemon up: receiver {daemon.receiver.url}, config {config_path}")
        if hasattr(src_emu, "webhooks"):
            _wait(lambda: bool(src_emu.webhooks()), 10)

        # 1. the full sync, with a progress bar
        run_id = daemon.start_sync(INTEGRATION)["run_id"]
        progress = daemon.progress[INTEGRATION]
        with Progress("  [progress.description]{task.description}", BarColumn(),
                      MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task(f"full sync #{run_id}", total=progress.total)
            while progress.state == "full_sync":
                bar.update(task, completed=progress.processed, total=progress.total)
                time.sleep(0.1)
            bar.update(task, completed=progress.processed, total=progress.total or
                       progress.processed)
        run = daemon.run(run_id)
        console.print(f"  full sync #{run_id} {run['status']}: created {run['created']}, "
                      f"updated {run['updated']}, unchanged {run['unchanged']}, skipped by "
                      f"conditions {run['skipped']}, failed {run['failed']} "
                      f"in {run['ended_at'] - run['started_at']:.1f} s")
        if run["status"] != "completed":
            return 1

        # 2. changes in the CRM, arriving as real webhooks
        rng = random.Random(7)
        applied_before = progress.events_applied
        console.print(f"  making {changes} change(s) in {source_kind} through its API:")
        for _ in range(changes):
            console.print(f"    - {src_emu.mutate(rng)}")
        if hasattr(src_emu, "wait_deliveries"):
            src_emu.wait_deliveries(30)
        settled = _wait(lambda: daemon.store.pending_count(INTEGRATION) == 0, 60)
        daemon._coordinator(INTEGRATION).ping().get(timeout=60)  # its last batch is counted
        console.print(f"  webhooks applied in real time: "
                      f"{progress.events_applied - applied_before} event(s)"
                      + ("" if settled else " [red](some still pending)[/red]"))

        # 3. consents both ways, and a selection becoming a tag
        rules = src_cls.sandbox_rules()
        if rules.get("consents") and hasattr(dst_emu, "unsubscribe"):
            console.print("  consents both ways, and a selection becoming a tag:")
            _consent_scenario(console, daemon, src_cls, source_options, dst_emu, rules)

        # 4. the check
        problems = compare(daemon, src_cls, dst_cls, source_options, dst_emu.snapshot(),
                           getattr(dst_emu, "consents", None), getattr(dst_emu, "tags", None))
        profiles = len(dst_emu.snapshot())
        if problems:
            console.print(f"[red]  {len(problems)} difference(s) between {source_kind} and "
                          f"{destination_kind}:[/red]")
            for line in problems[:20]:
                console.print(f"    {line}")
        else:
            console.print(f"[green]  {destination_kind} holds exactly what {source_kind} holds "
                          f"under the rules ({profiles:,} profiles)[/green]")
        ok = not problems
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
        src_emu.stop()
        dst_emu.stop()
        log_file.close()
        if keep or not ok:
            console.print(f"  state and logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        sys.stdout.flush()
