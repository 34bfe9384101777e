"""Dead letters: a real-time event that fails for good lands in the dead letters with its
reason; `syncd events list --failed` shows it, `syncd events retry [ID ...]` replays it.

The daemon runs in-process (the memory connector's world is then in reach of the test); the
CLI runs as a real subprocess against the daemon's config file and admin token."""

from __future__ import annotations

import json
import subprocess

import pytest
from reliability_support import wait_for

from syncd.testing import MemoryConnector, free_port, syncd_cli

REASON = "rejected by the destination: invalid e-mail address"


def start_with_cli_port(start, **config):
    # the CLI reads [admin] port from the file, so it must be a real port, not 0
    for _ in range(5):
        try:
            return start(admin_port=free_port(), **config)
        except AssertionError:  # the port was taken in between: try another
            continue
    raise RuntimeError("no free admin port")


@pytest.fixture
def daemon(start):
    return start_with_cli_port(start)


def cli(r, *args: str) -> subprocess.CompletedProcess:
    proc = syncd_cli(*args, "-c", str(r.config_path), cwd="/")
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def dead(r) -> list[dict]:
    return r.daemon.control.events()


def fail_for_good(r, record_id: str, value: str) -> dict:
    """Make the destination reject ``record_id``, deliver a webhook for it, wait until it is a
    dead letter; return that dead letter."""
    r.world.fail_keys[record_id] = REASON
    r.world.update(record_id, FirstName=value)
    assert r.send([record_id]).status_code == 200
    assert wait_for(lambda: any(e["record_id"] == record_id for e in dead(r)))
    letter = next(e for e in dead(r) if e["record_id"] == record_id)
    assert letter["error"] == REASON and letter["integration"] == "main"
    assert letter["attempts"] == 1  # not retried: the failure is not retryable
    assert not r.applied(record_id, value)
    return letter


def test_a_rejected_event_is_listed_and_replayed_by_the_cli(daemon):
    r = daemon
    letter = fail_for_good(r, "p04", "replayed")
    assert r.daemon.store.pending_count() == 0
    assert r.client.status()["integrations"]["main"]["dead_letters"] == 1

    listed = cli(r, "events", "list", "--failed").stdout
    assert f"#{letter['id']} main" in listed and "p04" in listed and REASON in listed, listed
    as_json = json.loads(cli(r, "events", "list", "--failed", "--json").stdout)
    assert [(e["id"], e["record_id"], e["error"]) for e in as_json] == [
        (letter["id"], "p04", REASON)]

    del r.world.fail_keys["p04"]
    out = cli(r, "events", "retry").stdout
    assert "1 event(s) queued again" in out, out
    assert wait_for(lambda: r.applied("p04", "replayed"))
    assert dead(r) == []
    assert wait_for(lambda: r.daemon.store.pending_count() == 0)
    assert "no failed events" in cli(r, "events", "list", "--failed").stdout


def test_retry_by_id_replays_only_that_event(daemon):
    r = daemon
    first = fail_for_good(r, "p05", "five")
    second = fail_for_good(r, "p06", "six")
    r.world.fail_keys.clear()

    out = cli(r, "events", "retry", str(first["id"])).stdout
    assert "1 event(s) queued again" in out, out
    assert wait_for(lambda: r.applied("p05", "five"))
    assert [e["id"] for e in dead(r)] == [second["id"]]
    assert not r.applied("p06", "six")

    out = cli(r, "events", "retry", str(second["id"]), "999999").stdout
    assert "1 event(s) queued again" in out, out  # an unknown id requeues nothing
    assert wait_for(lambda: r.applied("p06", "six"))
    assert dead(r) == []


def test_an_event_whose_retries_run_out_is_a_dead_letter(start, monkeypatch):
    """A retryable failure (reading the record back fails) with max_attempts = 2: retried
    once after its back-off, then kept as a dead letter with the reason."""
    broken = {"p07"}
    read_records = MemoryConnector.read_records

    def flaky(self, events):
        if any(e.record_id in broken for e in events):
            raise ConnectionError("crm unreachable")
        return read_records(self, events)

    monkeypatch.setattr(MemoryConnector, "read_records", flaky)
    r = start_with_cli_port(start, max_attempts=2)
    r.world.update("p07", FirstName="finally")
    assert r.send(["p07"]).status_code == 200
    assert wait_for(lambda: dead(r), timeout=20)  # first attempt, 1 s back-off, second
    [letter] = dead(r)
    assert letter["record_id"] == "p07" and letter["attempts"] == 2
    assert "crm unreachable" in letter["error"] and "reading back from crm" in \
        letter["error"]
    listed = cli(r, "events", "list", "--failed").stdout
    assert "p07" in listed and "2 attempts" in listed and "crm unreachable" in listed

    broken.clear()
    assert "1 event(s) queued again" in cli(r, "events", "retry", str(letter["id"])).stdout
    assert wait_for(lambda: r.applied("p07", "finally"))
    assert dead(r) == []


def test_events_list_shows_what_waits_and_failed_ones_only_with_the_flag(start, monkeypatch):
    """`syncd events list` lists every event not applied yet (one waiting for its next
    attempt, a dead letter); `--failed` only the dead letters."""
    read_records = MemoryConnector.read_records

    def flaky(self, events):
        if any(e.record_id == "p08" for e in events):
            raise ConnectionError("crm unreachable")
        return read_records(self, events)

    monkeypatch.setattr(MemoryConnector, "read_records", flaky)
    r = start_with_cli_port(start, max_attempts=8)
    letter = fail_for_good(r, "p09", "never")
    r.world.update("p08", FirstName="later")
    assert r.send(["p08"]).status_code == 200
    assert wait_for(lambda: any(e["record_id"] == "p08" and e["attempts"] >= 1
                                for e in r.client.events(failed=False)))
    listed = cli(r, "events", "list").stdout
    assert "p08 waiting" in listed and "crm unreachable" in listed, listed
    assert "p09 failed for good" in listed, listed
    failed = cli(r, "events", "list", "--failed").stdout
    assert "p09" in failed and "p08" not in failed, failed
    as_json = json.loads(cli(r, "events", "list", "--json").stdout)
    assert {e["record_id"]: e["status"] for e in as_json} == {"p08": "pending",
                                                               "p09": "dead"}
    assert [e["id"] for e in dead(r)] == [letter["id"]]  # listing changed nothing
