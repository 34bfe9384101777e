"""Dry runs read the destination live (READ_PROFILES) and compare it with the source: a profile
edited in the destination behind syncd's back is an update (the digest syncd keeps would call
it unchanged), an opt-out made there is kept as the consent rules say, and `--plan` refuses a
record whose destination profile moved since the dry run read it. A destination that cannot
read profiles gets a dry run decided on what syncd knows, labelled so. The daemon in-process
with the in-memory connector (real actors, SQLite file)."""

from __future__ import annotations

import copy
from functools import partial

import pytest
from daemon_support import CONSENT, write_config

from syncd import testing
from syncd.connectors.capabilities import Capability
from syncd.testing import MemoryConnector, memory_registry

wait_for = partial(testing.wait_for, timeout=15.0)


def ended(client, run_id):
    assert wait_for(lambda: client.run(run_id)["status"] != "running")
    return client.run(run_id)


def synced(client, world, cfg, name, settings=""):
    for i in range(20):
        world.set_label(f"p{i:02d}", "Newsletter", True)
    write_config(cfg, name, extra=CONSENT.format(label="Newsletter"), settings=settings)
    assert client.reload()["ok"] is True
    assert ended(client, client.start_sync("main")["run_id"])["status"] == "completed"


def test_an_edit_in_the_destination_is_an_update_and_nothing_is_written(running):
    daemon, client, world, cfg, name = running
    synced(client, world, cfg, name)
    with world.lock:
        world.profiles["p05"]["firstname"] = "edited in the destination"
        world.tags.setdefault("p06", {})["stray"] = True  # no mapping names it: no change
    world.update("p01", FirstName="new1")
    profiles, history, writes = copy.deepcopy(world.profiles), list(world.history), world.writes

    run = ended(client, client.start_sync("main", dry_run=True)["run_id"])
    assert run["status"] == "completed" and run["plan"]["basis"] == "live"
    assert world.profiles == profiles and world.history == history and world.writes == writes
    assert set(world.profile_reads) == {f"p{i:02d}" for i in range(20)}
    plan = {e["record_id"]: e for e in run["plan"]["entries"]}
    assert set(plan) == {"p01", "p05"}
    assert plan["p05"]["attributes"] == {
        "firstname": {"old": "edited in the destination", "new": "n5"}}
    assert plan["p05"]["read"]["attributes"] == {"firstname": "edited in the destination"}
    assert (run["updated"], run["unchanged"]) == (2, 18)

    write_config(cfg, name, extra=CONSENT.format(label="Newsletter"),
                 settings='dry_run_read = "known"')
    assert client.reload()["ok"] is True
    known = ended(client, client.start_sync("main", dry_run=True)["run_id"])  # the old way
    assert known["plan"]["basis"] == "known" and "NOT a live read" in known["plan"]["note"]
    assert {e["record_id"] for e in known["plan"]["entries"]} == {"p01"}  # p05 missed


def test_an_opt_out_made_in_the_destination_is_kept(running):
    daemon, client, world, cfg, name = running
    synced(client, world, cfg, name)
    with world.lock:  # a person opts out in the destination; no consent poll has seen it
        world.consents["p04"][("news", "email")] = False
    run = ended(client, client.start_sync("main", dry_run=True)["run_id"])
    plan = {e["record_id"]: e for e in run["plan"]["entries"]}
    assert plan["p04"]["action"] == "unchanged" and list(plan["p04"]["kept"]) == ["news|email"]
    assert run["plan"]["summary"] == {"opt-out kept news|email": 1}
    assert (run["updated"], run["unchanged"]) == (0, 20)
    applied = ended(client, client.start_sync("main", plan=run["id"])["run_id"])
    assert applied["status"] == "completed" and applied["processed"] == 0
    assert world.consents["p04"][("news", "email")] is False


def test_a_plan_is_refused_per_record_whose_destination_moved(running, capsys):
    daemon, client, world, cfg, name = running
    synced(client, world, cfg, name)
    with world.lock:
        world.profiles["p05"]["firstname"] = "drifted"
    world.update("p01", FirstName="new1")
    world.update("p02", FirstName="new2")
    dry = ended(client, client.start_sync("main", dry_run=True)["run_id"])
    with world.lock:  # after the dry run read it
        world.profiles["p02"]["firstname"] = "edited meanwhile"
    run = ended(client, client.start_sync("main", plan=dry["id"])["run_id"])
    assert (run["updated"], run["failed"]) == (2, 1)
    (refused,) = run["errors"]
    assert refused["record_id"] == "p02"
    assert "the destination changed since the dry run read it" in refused["reason"]
    assert "firstname: 'n2' -> 'edited meanwhile'" in refused["reason"]
    assert world.profiles["p05"]["firstname"] == "n5"  # the drift the digest hid: written
    assert world.profiles["p01"]["firstname"] == "new1"
    assert world.profiles["p02"]["firstname"] == "edited meanwhile"  # refused: not written


class NoReads(MemoryConnector):
    kind = "memory-noread"
    capabilities = MemoryConnector.capabilities - {Capability.READ_PROFILES}


@pytest.fixture
def without_reads(memory_daemon):
    registry = memory_registry()
    registry.connectors["memory-noread"] = NoReads
    d, world, cfg, _ = memory_daemon(records=5, registry=registry, mkt_kind="memory-noread")
    return d.daemon, d.client, world, cfg


def test_without_profile_reads_the_dry_run_says_so_and_decides_on_what_syncd_knows(
        without_reads, capsys):
    daemon, client, world, cfg = without_reads
    assert ended(client, client.start_sync("main")["run_id"])["status"] == "completed"
    world.update("p01", FirstName="new1")
    run = ended(client, client.start_sync("main", dry_run=True)["run_id"])
    assert run["status"] == "completed" and run["plan"]["basis"] == "known"
    assert "connection mkt (kind memory-noread) cannot read profiles back" in \
        run["plan"]["note"]
    (entry,) = run["plan"]["entries"]
    assert entry["basis"] == "known" and entry["attributes"] == {
        "firstname": {"old": "n1", "new": "new1"}}
    from syncd.app import cli

    cfg.write_text(cfg.read_text().replace("[admin]\nport = 0",
                                           f"[admin]\nport = {daemon.admin.port}"))
    capsys.readouterr()
    assert cli.main(["runs", "-c", str(cfg), "show", str(run["id"])]) == 0
    shown = capsys.readouterr().out
    assert "compared with: NOT A LIVE READ: connection mkt (kind memory-noread)" in shown
    assert "update p01: firstname: 'n1' -> 'new1'" in shown
