"""The real ``syncd run`` as a process against the Tribe and APSIS emulators: crash safety,
signals (SIGKILL, SIGTERM, SIGHUP), the CLI, plugin failures and the sandbox."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
from contextlib import closing

import pytest
from e2e_support import (
    NAME,
    SECRETS,
    differences,
    duplicate_profiles,
    full_sync,
    matching_in_tribe,
    matching_persons,
    syncd_cli,
    wait_for,
    wait_inbox_empty,
    wait_run,
    wait_webhooks_registered,
)

FIRSTNAME = "com.apsis1.attributes.firstname"


def rename(tribe, session, person_id: str, name: str) -> None:
    """Change a person's first name through Tribe's API (the emulator then sends a webhook)."""
    r = session.put(f"{tribe.url}/v1/odata/Relation_Person({person_id})",
                    json={"FirstName": name}, timeout=10)
    assert r.status_code < 300, r.text


def create_person(tribe, session, first_name: str) -> str:
    """A new person with a contact that matches the sandbox conditions (CustomerType A), made
    through Tribe's API; returns the person's id."""
    org = tribe.organizations()[0]["ID"]
    r = session.post(f"{tribe.url}/v1/odata/Relationship_Person_Contact_Standard", json={
        "Person": {"FirstName": first_name, "LastName": "E2e",
                   "EmailAddress": f"{first_name.lower()}@private.example"},
        "Relation": {"ID": org}, "EmailAddress": f"{first_name.lower()}@work.example",
        "CustomerType": "A", "IsFormer": False}, timeout=10)
    assert r.status_code == 201, r.text
    person = r.json().get("Person") or {}
    if isinstance(person, dict) and person.get("ID"):
        return person["ID"]
    return next(p["ID"] for p in tribe.persons() if p.get("FirstName") == first_name)


def firstname(apsis, person_id: str) -> str | None:
    return (apsis.snapshot().get(person_id) or {}).get(FIRSTNAME)


def acknowledged(tribe) -> list[dict]:
    deliveries = tribe.deliveries()
    failed = [d for d in deliveries if not d["delivered"]]
    assert not failed, f"webhooks not acknowledged by syncd: {failed[:3]}"
    return deliveries


# -- 1. SIGKILL after acknowledged webhooks ------------------------------------------------------


@pytest.mark.slow
def test_sigkill_after_acknowledged_webhooks_loses_nothing(emulators, setup):
    tribe, apsis = emulators.tribe, emulators.apsis
    # one attempt per APSIS request: a failing APSIS fails a write at once
    path, _, daemon = setup(apsis_options={"max_attempts": 1, "timeout": 5.0})
    client = daemon.start().wait_ready()
    wait_webhooks_registered(tribe, daemon.receiver_port)
    run = full_sync(client)
    assert run["status"] == "completed" and run["created"] > 0, run
    assert differences(path, tribe, apsis) == []

    # APSIS fails everything: what syncd acknowledges can only be in its inbox
    apsis.set_faults(error_rate=1.0)
    session = tribe.api_session()
    renamed = {pid: f"Killed{i:02d}" for i, pid in
               enumerate(matching_persons(tribe, apsis, 30))}
    for pid, name in renamed.items():
        rename(tribe, session, pid, name)
    created = [create_person(tribe, session, f"Newcomer{i}") for i in range(3)]
    session.close()
    assert tribe.wait_deliveries(30), "the Tribe emulator still has webhooks to deliver"
    deliveries = acknowledged(tribe)
    daemon.kill()
    assert len(deliveries) >= len(renamed) + len(created)
    assert all(200 <= d["status"] < 300 for d in deliveries)
    assert not any(firstname(apsis, pid) == name for pid, name in renamed.items()), \
        "a change reached APSIS while it was failing every request"
    assert not any(pid in apsis.snapshot() for pid in created)

    apsis.set_faults(error_rate=0.0)
    client = daemon.start().wait_ready()
    inbox = wait_inbox_empty(client, timeout=60)
    assert inbox.get("dead", 0) == 0, client.events()
    assert {pid: firstname(apsis, pid) for pid in renamed} == renamed
    assert {pid: firstname(apsis, pid) for pid in created} == {
        pid: f"Newcomer{i}" for i, pid in enumerate(created)}
    assert differences(path, tribe, apsis) == []
    assert duplicate_profiles(apsis) == []
    # every delivery of both runs was acknowledged, and the restart re-registered nothing new
    acknowledged(tribe)
    assert len(tribe.webhooks()) == 2


@pytest.mark.slow
def test_failed_realtime_writes_are_put_on_backoff(emulators, setup):
    tribe, apsis = emulators.tribe, emulators.apsis
    path, config, daemon = setup(apsis_options={"max_attempts": 1, "timeout": 5.0})
    daemon.start().wait_ready()
    wait_webhooks_registered(tribe, daemon.receiver_port)
    apsis.set_faults(error_rate=1.0)
    session = tribe.api_session()
    persons = matching_in_tribe(tribe, 3)
    for i, pid in enumerate(persons):
        rename(tribe, session, pid, f"Backoff{i}")
    session.close()
    assert tribe.wait_deliveries(30)
    db = os.path.join(config["daemon"]["state_dir"], "syncd.db")

    def attempts() -> list[int]:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            return [row[0] for row in conn.execute("SELECT attempts FROM inbox")]

    def crashes() -> list[dict]:
        return [e for e in daemon.log_events() if e["event"] == "realtime.batch_crashed"]

    wait_for(lambda: crashes() or (len(attempts()) == 3 and min(attempts()) >= 1), 20,
             "every failed event to be put on back-off")
    assert crashes() == []


# -- 2. SIGTERM ----------------------------------------------------------------------------------


def refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


@pytest.mark.slow
def test_sigterm_stops_cleanly_and_the_interrupted_full_sync_resumes(emulators, setup):
    tribe, apsis = emulators.tribe, emulators.apsis
    stop_timeout = 10.0
    path, _, daemon = setup(stop_timeout=stop_timeout, integration={"page_size": 10})
    client = daemon.start().wait_ready()
    apsis.set_faults(latency=0.1)  # a full sync of a few seconds
    run_id = client.start_sync(NAME, confirm=True)["run_id"]
    wait_for(lambda: client.run(run_id)["processed"] >= 30, 30, "the full sync to get going")
    assert client.run(run_id)["status"] == "running"

    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    code = daemon.wait(stop_timeout + 5)
    took = time.monotonic() - started
    assert code == 0, daemon.log_tail()
    assert took < stop_timeout, f"the daemon took {took:.1f} s to stop"
    assert refuses_connections(daemon.receiver_port)
    assert refuses_connections(daemon.admin_port)
    events = [e["event"] for e in daemon.log_events()]
    assert "daemon.stopped" in events
    assert not any(e.get("level") in ("error", "critical") for e in daemon.log_events()), \
        [e for e in daemon.log_events() if e.get("level") in ("error", "critical")]

    apsis.set_faults(latency=0.0)
    client = daemon.start().wait_ready()
    runs = client.runs(NAME)
    old = next(r for r in runs if r["id"] == run_id)
    assert old["status"] == "interrupted"
    new = next(r for r in runs if r["resumed_from"] == run_id)
    new = wait_run(client, new["id"], 60)
    assert new["status"] == "completed", new
    # resumed at the cursor, not started over: the two runs read every person once
    assert old["processed"] > 0 and new["processed"] > 0
    # (the resumed run's own "total" is not recorded: Tribe counts only on the first page)
    assert old["total"] and old["processed"] + new["processed"] == old["total"]
    assert next(e for e in daemon.log_events(since_start=True)
            if e["event"] == "full_sync.interrupted")["run_id"] == run_id
    assert differences(path, tribe, apsis) == []
    assert duplicate_profiles(apsis) == []


# -- 3. SIGHUP with a bad config -----------------------------------------------------------------


@pytest.mark.slow
def test_sighup_with_a_bad_config_keeps_the_old_one(emulators, setup):
    tribe, apsis = emulators.tribe, emulators.apsis
    path, config, daemon = setup()
    client = daemon.start().wait_ready()
    wait_webhooks_registered(tribe, daemon.receiver_port)
    good = open(path).read()
    assert "page_size = 50" in good
    with open(path, "w") as fh:
        fh.write(good.replace("page_size = 50", "page_sise = 50"))
    daemon.signal(signal.SIGHUP)

    def rejected():
        return [e for e in daemon.log_events() if e["event"] == "reload.rejected"]

    problems = wait_for(rejected, 15, "the reload to be rejected")
    key = f"integrations.{NAME}.page_sise"
    assert any(path in e["error"] and key in e["error"] and "did you mean" in e["error"]
               and "page_size" in e["error"] for e in problems), problems
    assert "reload.kept_old_config" in [e["event"] for e in daemon.log_events()]
    status = client.status()
    assert any(key in line for line in status["reload_errors"])

    # still serving webhooks, on the old config
    session = tribe.api_session()
    pid = matching_in_tribe(tribe, 1)[0]
    rename(tribe, session, pid, "AfterBadReload")
    session.close()
    wait_for(lambda: firstname(apsis, pid) == "AfterBadReload", 20,
             "the change to arrive in APSIS")
    cli = syncd_cli("status", "-c", path)
    assert cli.returncode == 0, cli.stderr
    assert "last reload was rejected" in cli.stdout and key in cli.stdout

    with open(path, "w") as fh:
        fh.write(good)
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: "reload.applied" in [e["event"] for e in daemon.log_events()], 15,
             "the fixed config to be applied")
    assert client.status()["reload_errors"] == []
    cli = syncd_cli("status", "-c", path)
    assert cli.returncode == 0 and "rejected" not in cli.stdout, cli.stdout + cli.stderr
    assert daemon.running()


# -- 4. the CLI ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_against_a_running_daemon_never_shows_a_secret(emulators, setup, tmp_path):
    path, config, daemon = setup(log_level="debug")
    outputs: list[str] = []

    def cli(*args: str) -> subprocess.CompletedProcess:
        result = syncd_cli(*args)
        outputs.append(result.stdout + result.stderr)
        return result

    ok = cli("check-config", "-c", path)
    assert ok.returncode == 0 and "OK" in ok.stdout, ok.stderr
    broken = tmp_path / "broken.toml"
    text = open(path).read().replace("page_size = 50", "page_sise = 50")
    # a secret under a misspelt key must not be echoed either
    text = text.replace("client_secret =", "client_secrte =", 1)
    broken.write_text(text)
    bad = cli("check-config", "-c", str(broken))
    assert bad.returncode != 0
    assert f"integrations.{NAME}.page_sise" in bad.stderr
    assert "did you mean `page_size`" in bad.stderr
    assert "client_secrte" in bad.stderr and "did you mean `client_secret`" in bad.stderr

    daemon.start().wait_ready()
    started = cli("sync", "start", NAME, "--wait", "-c", path)
    assert started.returncode == 0, started.stdout + started.stderr
    run_id = int(started.stdout.split("run #", 1)[1].split()[0])
    run = daemon.client.run(run_id)
    assert run["status"] == "completed" and run["created"] > 0
    assert (f"created {run['created']}, updated {run['updated']}, unchanged "
            f"{run['unchanged']}, skipped by conditions {run['skipped']}, failed "
            f"{run['failed']}") in started.stdout

    runs = cli("runs", "-c", path)
    assert runs.returncode == 0, runs.stderr
    row = next(line for line in runs.stdout.splitlines() if f" {run_id} " in line)
    assert NAME in row and "completed" in row and str(run["created"]) in row
    shown = cli("runs", "show", str(run_id), "-c", path)
    assert shown.returncode == 0, shown.stderr
    assert f"run #{run_id} {NAME} full: completed" in shown.stdout
    assert f"created {run['created']}" in shown.stdout
    status = cli("status", "-c", path)
    assert status.returncode == 0, status.stderr
    assert f"syncd pid {daemon.proc.pid}" in status.stdout and NAME in status.stdout
    as_json = cli("status", "--json", "-c", path)
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout)["integrations"][NAME]["last_run"]["id"] == run_id

    assert daemon.stop() == 0
    log = daemon.log_text()
    assert "full_sync.completed" in log
    for secret in SECRETS:
        assert secret not in log, "a secret is in the daemon's log"
        for out in outputs:
            assert secret not in out, f"a secret is in the output:\n{out}"


# -- 5. a plugin that fails to import ------------------------------------------------------------


def broken_plugin(root) -> str:
    """A distribution on disk whose ``syncd`` entry point raises ImportError; returns the
    directory to put on PYTHONPATH."""
    site = root / "site"
    info = site / "broken_plugin_dist-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[syncd]\nbroken = broken_syncd_plugin\n")
    (site / "broken_syncd_plugin.py").write_text(
        'raise ImportError("broken_syncd_plugin needs the libfoo bindings")\n')
    return str(site)


@pytest.mark.slow
def test_a_plugin_that_fails_to_import_is_reported_and_the_others_load(emulators, setup,
                                                                        tmp_path):
    site = broken_plugin(tmp_path)
    listed = syncd_cli("plugins", "--json", pythonpath=site)
    plugins = {p["name"]: p for p in json.loads(listed.stdout)}
    assert plugins["broken"]["status"] == "failed"
    assert "ImportError" in plugins["broken"]["reason"]
    assert "needs the libfoo bindings" in plugins["broken"]["reason"]
    assert plugins["broken"]["distribution"] == "broken-plugin"
    assert plugins["tribe"]["status"] == "loaded" and plugins["tribe"]["kinds"] == ["tribe"]
    assert plugins["apsis"]["status"] == "loaded" and plugins["apsis"]["kinds"] == ["apsis"]
    table = syncd_cli("plugins", pythonpath=site)
    assert table.returncode == 1  # not every plugin loaded
    lines = {line.split("│")[1].strip(): line for line in table.stdout.splitlines()
             if line.count("│") > 2}
    assert "failed" in lines["broken"] and "needs the libfoo bindings" in lines["broken"]
    assert "loaded" in lines["tribe"] and "loaded" in lines["apsis"]

    path, _, daemon = setup(pythonpath=site)
    client = daemon.start().wait_ready()
    run = full_sync(client)
    assert run["status"] == "completed" and run["created"] > 0, run
    assert differences(path, emulators.tribe, emulators.apsis) == []
    assert "broken" in daemon.log_text()  # the failure is logged


# -- 6. the sandbox ------------------------------------------------------------------------------


@pytest.mark.slow
def test_sandbox_once_holds_exactly_what_tribe_and_lime_hold():
    result = syncd_cli("sandbox", "--once", "--contacts", "300", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "holds exactly what tribe holds" in result.stdout
    assert "holds exactly what lime holds" in result.stdout
    assert "requests sent before a Retry-After ran out: 0" in result.stdout
    # a linked user whose Outlook follows Tribe, and whose Outlook edit flows back
    assert "5 contacts in Outlook, each with its connector id" in result.stdout
    assert "an Outlook edit reached Tribe" in result.stdout
