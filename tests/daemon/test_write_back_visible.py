"""A write-back of a destination opt-out that is still pending (waiting for a change of the
record to be applied, held by the guard, failing) shows in `syncd status` and in
`syncd events list`, with the reason of its last check. The daemon in-process on the memory
connector; the pending opt-out is put in its state store as the consent poll would."""

from __future__ import annotations

import argparse

from test_status_glance import screen

from syncd.app import cli_runs
from syncd.engine.explain import Journal


def test_a_pending_write_back_shows_in_status_and_events_list(running, capsys, monkeypatch):
    daemon, client, world, cfg, name = running
    assert client.status()["integrations"]["main"]["write_backs"] == 0
    daemon.store.record_optouts("main", [("p05", "news", "email", "2026-11-30T10:00:00.000Z")])
    Journal(daemon.store, "main").write_back([("p05", {
        "action": "wait", "topic": "news", "channel": "email",
        "reason": "a change of the record waits in the inbox"})])
    status = client.status()
    assert status["integrations"]["main"]["write_backs"] == 1
    assert "main: 1 opt-out write-back(s) to the source pending" in screen(status)
    assert client.events(failed=True) == []  # not a failure: still going
    pending = [e for e in client.events(failed=False) if e["kind"] == "opt-out write-back"]
    assert [(e["record_id"], e["status"], e["topics"]) for e in pending] == \
        [("p05", "pending", ["news/email"])]
    assert pending[0]["error"] == "wait: a change of the record waits in the inbox"
    capsys.readouterr()
    monkeypatch.setattr(cli_runs.common, "admin_client", lambda args: client)  # its port
    args = argparse.Namespace(config=str(cfg), failed=False, integration=None, json=False)
    assert cli_runs.cmd_events_list(args) == 0
    out = capsys.readouterr().out
    assert "opt-out write-back p05 waiting (news/email)" in out
    assert "wait: a change of the record waits in the inbox" in out
    daemon.store.mark_optouts_written("main", [("p05", "news", "email")])
    assert client.status()["integrations"]["main"]["write_backs"] == 0
    assert not [e for e in client.events(failed=False) if e["kind"] == "opt-out write-back"]
