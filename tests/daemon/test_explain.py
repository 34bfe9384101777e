"""`syncd explain`: a contact skipped by a condition, one whose opt-out was kept and one held
by the guard, each told with its reason; the daemon in-process (real actors, SQLite file)."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from functools import partial

import pytest
from daemon_support import CONSENT, post_webhook

from syncd import testing
from syncd.app import cli
from syncd.engine import explain
from syncd.records import Record
from syncd.testing import memory_registry

wait_for = partial(testing.wait_for, timeout=15.0)
OLD = "2026-01-01T00:00:00+00:00"


@pytest.fixture
def daemon_world(memory_world_config, inprocess_daemons):
    world, cfg, name = memory_world_config(
        0, settings="confirm_share = 0.1", extra=CONSENT.format(label="Newsletter")
        + '[integrations.main.conditions]\nKind = "A"\n')
    for i in range(20):
        world.put(Record(f"p{i:02d}", fields={"FirstName": f"n{i}", "Kind": "A"},
                         email=f"p{i}@x.nl", labels=frozenset({"Newsletter"}),
                         label_times={"Newsletter": OLD}))
    world.put(Record("b01", fields={"FirstName": "bee", "Kind": "B"}, email="b@x.nl"))
    d = inprocess_daemons(cfg, memory_registry()).start()
    # the CLI finds the daemon through the config: name the port it picked
    cfg.write_text(cfg.read_text().replace("[admin]\nport = 0",
                                           f"[admin]\nport = {d.daemon.admin.port}"))
    return d.daemon, d.client, world, cfg


def explain_screen(capsys, cfg, record: str, *flags: str) -> str:
    capsys.readouterr()
    assert cli.main(["explain", "-c", str(cfg), "main", record, *flags]) == 0
    return capsys.readouterr().out


def show(capsys, title: str, screen: str) -> None:
    """With SYNCD_SHOW_SCREENS=1: the screen an operator sees."""
    if os.environ.get("SYNCD_SHOW_SCREENS"):
        with capsys.disabled():
            print(f"\n--- {title}\n{screen}")


def test_three_stories_each_with_its_reason(daemon_world, capsys):
    daemon, client, world, cfg = daemon_world
    run = client.start_sync("main")["run_id"]
    assert wait_for(lambda: client.run(run)["status"] == "completed")

    # 1. skipped by a condition
    screen = explain_screen(capsys, cfg, "b01")
    show(capsys, "skipped by a condition", screen)
    assert "never written to the destination" in screen
    assert "decision skip (full sync): does not match the sync conditions" in screen
    assert 'condition Kind = "A" FAILED (found "B")' in screen

    # 2. an opt-out made in the destination, kept against an older label in the source
    world.unsubscribe("p01", "news")
    daemon.coordinators["main"].proxy().run_job("consent_changes", {}).get(timeout=15)
    assert "Newsletter" not in world.records["p01"].labels  # written back
    # a CRM import restores the contact as it was, label and its old time included
    world.put(replace(world.records["p01"], labels=frozenset({"Newsletter"}),
                      label_times={"Newsletter": OLD}, fields={"FirstName": "n1 again",
                                                               "Kind": "A"}))
    assert post_webhook(daemon, ["p01"]).status_code == 200
    assert wait_for(lambda: world.profiles["p01"].get("firstname") == "n1 again")
    # the write lands before its answer is journaled; the event is marked done after that
    assert wait_for(lambda: daemon.store.pending_count() == 0)
    screen = explain_screen(capsys, cfg, "p01")
    show(capsys, "opt-out kept", screen)
    last = screen[screen.rindex("decision"):]
    assert "decision write (real time)" in last
    assert "consent news/email: opted out: opt-out kept: it was made in the destination" in last
    assert f"label 'Newsletter' was set at {OLD}, before it" in last
    assert "answer   write: updated" in last
    assert "answer   read back from crm: read" in screen  # the source's answer, too
    assert "answer   opt-out written back to crm: updated" in screen  # before the event
    assert world.consents["p01"][("news", "email")] is False

    # 3. held by the guard: 12 opt-outs in the source, the limit is 10
    ids = [f"p{i:02d}" for i in range(4, 16)]
    counted = client.status()["integrations"]["main"]["guard"]["count"]  # p01's flip: 1
    for rid in ids:
        world.set_label(rid, "Newsletter", False)
    assert post_webhook(daemon, ids).status_code == 200
    assert wait_for(lambda: daemon.store.pending_count() == 0)
    held = [rid for rid in ids if world.consents[rid][("news", "email")]]
    assert len(held) == len(ids) - (10 - counted)
    screen = explain_screen(capsys, cfg, held[0])
    show(capsys, "held by the guard", screen)
    assert "guard    held consent changes news|email (not sent" in screen
    assert "syncd confirm main" in screen and "limit 10" in screen

    story = json.loads(explain_screen(capsys, cfg, held[0], "--json"))
    kinds = [e["kind"] for e in story["entries"]]
    assert kinds[-1] in ("answer", "guard") and "event" in kinds
    assert [e["at"] for e in story["entries"]] == sorted(e["at"] for e in story["entries"])


def test_the_journal_is_pruned_after_its_days(daemon_world):
    daemon, client, world, cfg = daemon_world
    run = client.start_sync("main")["run_id"]
    assert wait_for(lambda: client.run(run)["status"] == "completed")
    assert explain.story(daemon.store, "main", "p02")["entries"]
    assert explain.prune(daemon.store, 7.0) == 0
    assert explain.prune(daemon.store, 7.0, now=10**11) > 0
    assert explain.story(daemon.store, "main", "p02")["entries"] == []


def test_explain_of_an_unknown_integration_is_refused(daemon_world, capsys):
    _, _, _, cfg = daemon_world
    assert cli.main(["explain", "-c", str(cfg), "nope", "p01"]) == 1
    assert "no integration named 'nope'" in capsys.readouterr().err
