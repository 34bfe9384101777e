"""Quiet rounds of an Outlook link are not kept as runs (:mod:`syncd.engine.linkops`): a poll
every ``poll_interval`` that found no change on either side, wrote, failed and held nothing
is counted in the link's status and in ``/metrics``, not in ``syncd runs``; a round that
changed something, failed or held is a run as before. Against the Tribe emulator and the
Graph and identity emulators, with the link's real service thread and a real SQLite store.
"""

from __future__ import annotations

from rich.console import Console

from syncd.app.cli_status import print_status
from syncd.engine.linkops import LinkRegistry, Links
from syncd.engine.store import Store
from syncd.metrics import RUNS
from syncd.testing import wait_for
from tests.ms365.test_link_operations import ANNA, CONTACTS, link, ops, runs

__all__ = ["ops"]  # the fixture, shared with test_link_operations


def quiet(registry, name):
    return registry.status().get(name, {}).get("quiet_rounds", 0)


def test_quiet_polls_add_no_run_and_show_in_status(world, ops):
    make, registry, store = ops
    world.employee(ANNA)
    keys = [world.contact(manager=ANNA, LastName=f"Quiet{i}") for i in range(2)]
    connector = make(poll_interval=0.05)  # a poll every 50 ms: Tribe since the cursor + delta
    link(world, connector, ANNA)
    name = "outlook-ops:" + ANNA
    assert wait_for(lambda: quiet(registry, name) >= 1, timeout=30)
    kept = runs(store, name)
    assert [r["kind"] for r in kept if r["kind"] == "initial_sync"] == ["initial_sync"]
    polls = RUNS.labels(name, "poll", "quiet")._value.get()
    # ten more quiet polls: no run kept, each counted in the status and the metrics
    before = quiet(registry, name)
    assert wait_for(lambda: quiet(registry, name) >= before + 10, timeout=30)
    assert runs(store, name) == kept
    assert RUNS.labels(name, "poll", "quiet")._value.get() >= polls + 10
    status = registry.status()[name]
    assert status["last_quiet"] is not None and status["last_run"]["id"] == kept[0]["id"]
    console = Console(record=True, width=250)
    print_status({"pid": 1, "uptime": 1, "config": "c", "receiver": None, "ready": True,
                  "connections": {}, "integrations": {}, "links": registry.status()}, console)
    assert " since, last " in console.export_text()

    # one change in Outlook: that round is a run, with its counts
    contact = world.outlook_by_key(ANNA)[keys[0]]
    world.patch_outlook(ANNA, contact["id"], {"jobTitle": "Changed"})

    def changed():
        return [r for r in runs(store, name) if r["id"] not in {k["id"] for k in kept}]

    assert wait_for(changed, timeout=30)
    assert wait_for(lambda: changed()[0]["status"] == "completed", timeout=30)
    (run,) = changed()
    assert run["kind"] == "poll" and (run["updated"], run["failed"]) == (1, 0)
    counts = store.run_counts(run["id"])  # the poll also compared Tribe's recent ones
    assert {k: n for k, n in counts.items() if k != "outlook.unchanged"} == {"tribe.updated": 1}
    assert world.tribe(CONTACTS, keys[0])["Role"] == "Changed"

    # a round that fails (Graph refuses the delta read) is kept, with its error
    after = runs(store, name)
    world.graph_emu.faults.fail_next = [400]
    assert wait_for(lambda: any(r["status"] == "failed" for r in runs(store, name)),
                    timeout=30)
    (failed,) = [r for r in runs(store, name) if r["status"] == "failed"]
    assert failed["kind"] == "poll" and "400" in (failed["error"] or "")
    assert len(runs(store, name)) == len(after) + 1


def test_a_kept_run_starts_the_quiet_count_again(tmp_path):
    store = Store(str(tmp_path / "syncd.db"))
    registry = LinkRegistry(store)
    links = Links(registry, "outlook")
    links.register("anna", lambda action: None)
    for _ in range(3):  # compared records, all unchanged: quiet
        with links.run("anna", "poll") as run:
            run.count("outlook", "unchanged", 4)
    assert store.runs("outlook:anna") == []
    assert registry.status()["outlook:anna"]["quiet_rounds"] == 3
    with links.run("anna", "notification") as run:
        run.count("tribe", "updated")
    with links.run("anna", "poll") as run:  # a failure is kept, even with nothing counted
        run.error("k1", "tribe: 500")
    with links.run("anna", "initial_sync"):  # an initial sync is always kept
        pass
    assert [r["kind"] for r in store.runs("outlook:anna")] == [
        "initial_sync", "poll", "notification"]
    assert registry.status()["outlook:anna"]["quiet_rounds"] == 0
    assert registry.status()["outlook:anna"]["last_quiet"] is not None
    store.close()
