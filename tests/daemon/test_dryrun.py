"""`syncd sync start --dry-run` writes nothing and keeps a plan that `syncd runs show` lists;
`--plan RUN` applies exactly that plan, refusing a record whose source changed since. The
daemon in-process with the in-memory connector (real actors, SQLite file)."""

from __future__ import annotations

import copy
from functools import partial

from daemon_support import CONSENT, write_config

from syncd import testing
from syncd.app import cli
from syncd.records import Record

wait_for = partial(testing.wait_for, timeout=15.0)


def ended(client, run_id):
    assert wait_for(lambda: client.run(run_id)["status"] != "running")
    return client.run(run_id)


def test_dry_run_then_its_plan(running, capsys):
    daemon, client, world, cfg, name = running
    for i in range(20):
        world.set_label(f"p{i:02d}", "Newsletter", True)
    write_config(cfg, name, extra=CONSENT.format(label="Newsletter"))
    assert client.reload()["ok"] is True
    assert ended(client, client.start_sync("main")["run_id"])["status"] == "completed"

    world.update("p01", FirstName="new1")
    world.update("p02", FirstName="new2")
    world.set_label("p03", "Newsletter", False)  # an opt-out in the CRM: a consent change
    world.put(Record("p20", fields={"FirstName": "n20"}, email="p20@x.nl"))
    profiles, history = copy.deepcopy(world.profiles), list(world.history)

    dry = client.start_sync("main", dry_run=True)
    run = ended(client, dry["run_id"])
    assert run["kind"] == "dry_run" and run["status"] == "completed"
    assert (run["processed"], run["created"], run["updated"], run["unchanged"]) == (21, 1, 3, 17)
    assert world.profiles == profiles and world.history == history  # nothing written
    plan = {e["record_id"]: e for e in run["plan"]["entries"]}
    assert set(plan) == {"p01", "p02", "p03", "p20"}
    assert plan["p01"]["attributes"] == {"firstname": {"old": "n1", "new": "new1"}}
    assert plan["p03"]["attributes"] == {} and plan["p03"]["flips"] == ["news|email"]
    assert plan["p20"]["action"] == "create"
    assert run["plan"]["summary"]["attribute firstname"] == 2

    capsys.readouterr()
    # the CLI finds the daemon through the config: name the port it picked
    cfg.write_text(cfg.read_text().replace("[admin]\nport = 0",
                                           f"[admin]\nport = {daemon.admin.port}"))
    assert cli.main(["runs", "-c", str(cfg), "show", str(dry["run_id"])]) == 0
    shown = capsys.readouterr().out
    assert "compared with: the profiles read live from connection mkt" in shown
    assert "plan: attribute firstname 2, consent news|email 1, create 1, update 3" in shown
    assert "update p01: firstname: 'n1' -> 'new1'" in shown
    assert "update p03: consent news|email flips: opted in -> opted out" in shown
    assert "create p20: firstname = 'n20'" in shown

    world.update("p02", FirstName="changed after the plan")
    applied = client.start_sync("main", plan=dry["run_id"])
    run = ended(client, applied["run_id"])
    assert run["kind"] == "plan" and run["status"] == "completed"
    assert (run["created"], run["updated"], run["failed"]) == (1, 2, 1)
    assert [e["record_id"] for e in run["errors"]] == ["p02"]
    assert "the source changed since the plan" in run["errors"][0]["reason"]
    assert world.profiles["p01"]["firstname"] == "new1"
    assert world.profiles["p02"]["firstname"] == "n2"  # refused: not written
    assert world.profiles["p20"]["firstname"] == "n20"
    assert world.consents["p03"][("news", "email")] is False


def test_a_plan_must_be_a_completed_dry_run_of_that_integration(running):
    daemon, client, world, cfg, name = running
    full = ended(client, client.start_sync("main")["run_id"])
    from syncd.exceptions import AdminError

    for plan in (full["id"], 9999):
        try:
            client.start_sync("main", plan=plan)
        except AdminError as exc:
            assert "is not a dry run of main" in str(exc)
        else:
            raise AssertionError("a plan that is no dry run was accepted")
