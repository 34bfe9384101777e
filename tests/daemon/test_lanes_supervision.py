"""Supervision of a connection with two lanes (syncd.connectors.lanes), the daemon in-process
with the memory connector declaring two_lanes (real actors, SQLite file): both lanes are
actors on one connector instance; the real-time path calls the real-time lanes and a full sync
the bulk lanes; a dead real-time lane makes the connection not ready and restarts both lanes
with a new instance; the watchdog pings each lane; syncd status shows each lane."""

from __future__ import annotations

from functools import partial

import pytest
from daemon_support import post_webhook
from rich.console import Console

from syncd import testing
from syncd.app.cli_status import lanes_cell, print_status
from syncd.app.health import Liveness, readiness
from syncd.testing import MemoryConnector, memory_registry

wait_for = partial(testing.wait_for, timeout=15.0)


class TwoLaneMemory(MemoryConnector):
    kind = "memory2"
    two_lanes = True  # the memory world is under one lock


@pytest.fixture
def two_lanes(memory_daemon):
    """(daemon, world) of a started daemon whose connections are TwoLaneMemory (10 records);
    ``daemon.cfg_path`` is its config."""
    registry = memory_registry()
    registry.connectors["memory2"] = TwoLaneMemory
    d, world, cfg, _ = memory_daemon(10, registry, crm_kind="memory2", mkt_kind="memory2")
    d.daemon.cfg_path = cfg  # for the reload test
    return d.daemon, world


def calls(daemon, connection):
    return {lane: v["calls"] for lane, v in
            daemon.control.status()["connections"][connection]["lanes"].items()}


def test_two_actors_on_one_connector_each_serving_its_work(two_lanes):
    daemon, world = two_lanes
    sup = daemon.connections["mkt"]
    assert sup.alive() and sup.realtime is not None and sup.realtime is not sup.ref
    bulk, realtime = (r.proxy().connector.get(timeout=5) for r in (sup.ref, sup.realtime))
    assert bulk is realtime  # one instance: one client, budget, holds
    before = calls(daemon, "mkt")

    world.update("p03", FirstName="changed")
    assert post_webhook(daemon, ["p03"]).status_code == 200
    assert wait_for(lambda: world.profiles.get("p03", {}).get("firstname") == "changed")
    after = calls(daemon, "mkt")
    assert after["realtime"] > before["realtime"] and after["bulk"] == before["bulk"]
    assert calls(daemon, "crm")["realtime"] > 0  # the read-back

    run_id = daemon.control.start_sync("main")["run_id"]
    assert wait_for(lambda: daemon.control.run(run_id)["status"] == "completed")
    assert calls(daemon, "mkt")["bulk"] > after["bulk"]
    assert calls(daemon, "mkt")["realtime"] == after["realtime"]


def test_a_dead_real_time_lane_restarts_both_lanes(two_lanes):
    daemon, world = two_lanes
    sup = daemon.connections["mkt"]
    old_bulk, old_realtime = sup.ref, sup.realtime
    liveness = Liveness(daemon)
    liveness.probe()
    assert {"connection:mkt", "connection:mkt (realtime lane)"} <= set(liveness._pings)

    old_realtime.stop(block=True)
    assert not sup.alive()
    assert "main: connection mkt is restarting" in readiness(daemon)
    assert wait_for(lambda: sup.alive() and sup.restarts == 1)
    assert sup.ref is not old_bulk and sup.realtime is not old_realtime
    assert wait_for(lambda: not old_bulk.is_alive())  # the survivor stopped
    assert "main: connection mkt is restarting" not in readiness(daemon)

    world.update("p04", FirstName="after restart")
    assert post_webhook(daemon, ["p04"]).status_code == 200
    assert wait_for(lambda: world.profiles.get("p04", {}).get("firstname") == "after restart")


def test_a_reload_that_changes_the_connection_restarts_both_lanes(two_lanes):
    daemon, world = two_lanes
    old = daemon.connections["mkt"]
    old_refs = (old.ref, old.realtime)
    cfg = daemon.cfg_path
    cfg.write_text(cfg.read_text().replace('[connections.mkt]\nkind = "memory2"',
                                           '[connections.mkt]\nkind = "memory2"\n'
                                           'webhook_secret = "changed"'))
    result = daemon.control.reload()
    assert result["ok"] is True and "mkt" in result["changes"]["connections_restarted"]
    new = daemon.connections["mkt"]
    assert new.alive() and new.realtime is not None
    assert new.ref not in old_refs and new.realtime not in old_refs
    assert not any(r.is_alive() for r in old_refs)
    world.update("p05", FirstName="after reload")
    assert post_webhook(daemon, ["p05"]).status_code == 200
    assert wait_for(lambda: world.profiles.get("p05", {}).get("firstname") == "after reload")


def test_status_shows_each_lane():
    cell = lanes_cell({"lanes": {
        "bulk": {"call": "bulk_write", "for_s": 75.0, "queued": 2, "calls": 9, "alive": True},
        "realtime": {"call": None, "for_s": None, "queued": 0, "calls": 4, "alive": False}}})
    assert cell == "bulk: bulk_write 1m15s, 2 queued; realtime: idle DEAD"
    console = Console(record=True, width=250)
    print_status({"pid": 1, "uptime": 1, "config": "c", "receiver": None, "ready": True,
                  "connections": {"apsis": {"kind": "apsis", "state": "running",
                                            "restarts": 0, "last_failure": None,
                                            "lanes": {"bulk": {"call": "write_profiles",
                                                               "for_s": 3.0, "queued": 0}}}},
                  "integrations": {}}, console)
    assert "bulk: write_profiles 3s" in console.export_text()
