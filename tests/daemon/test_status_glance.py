"""`syncd status` at a glance, with the daemon in-process holding a full sync mid-way: the
progress with its ETA, the queue and the lag of its oldest event, the guard, the next job,
each connection's health, readiness, and what the last reload changed."""

from __future__ import annotations

import os
import threading
import time
from functools import partial

from daemon_support import post_webhook, write_config
from rich.console import Console

from syncd import testing
from syncd.app import cli_status, glance

wait_for = partial(testing.wait_for, timeout=15.0)


def screen(status) -> str:
    console = Console(width=250, record=True, file=open("/dev/null", "w"))
    cli_status.print_status(status, console)
    return console.export_text()


def test_status_during_a_full_sync(running, capsys):
    daemon, client, world, cfg, name = running
    assert wait_for(lambda: client.status()["ready"])
    gate = threading.Event()
    world.page_gate = gate  # read_page waits between pages: the run is held after its first
    try:
        run_id = client.start_sync("main")["run_id"]
        assert wait_for(lambda: client.status()["integrations"]["main"]["processed"] >= 7)
        world.update("p03", FirstName="queued meanwhile")
        assert post_webhook(daemon, ["p03"]).status_code == 200
        status = client.status()
        main = status["integrations"]["main"]
        assert main["state"] == "full_sync" and main["total"] == 20
        assert main["queue"] == 1 and main["oldest_pending_age"] >= 0
        assert main["eta"]["left"] == 20 - main["processed"] and main["eta"]["per_s"] > 0
        text = screen(status)
        if os.environ.get("SYNCD_SHOW_SCREENS"):  # the screen, for a person reading along
            with capsys.disabled():
                print("\n" + text)
        row = next(line for line in text.splitlines() if line.startswith("│ main"))
        assert "full_sync" in row and f"{main['processed']}/20" in row and "ETA" in row
        assert "0/10 in 24h" in row  # the guard's count against its limit
        crm = next(line for line in text.splitlines() if line.startswith("│ crm"))
        assert "running" in crm and "ok" in crm
    finally:
        gate.set()
        world.page_gate = None
    assert wait_for(lambda: client.run(run_id)["status"] == "completed")
    assert wait_for(lambda: client.status()["integrations"]["main"]["queue"] == 0)
    assert world.profiles["p03"]["firstname"] == "queued meanwhile"


def test_status_lists_what_a_reload_changed(running):
    daemon, client, world, cfg, name = running
    write_config(cfg, name, settings="batch_size = 50")
    assert client.reload()["ok"] is True
    text = screen(client.status())
    assert "last reload" in text and "integrations changed main" in text


def test_eta_is_the_pace_of_this_run():
    now = time.time()
    run = {"started_at": now - 10, "processed": 100}
    found = glance.eta(run, 150, 650, now)  # resumed: 50 were done before this run
    assert found["per_s"] == 10 and found["left"] == 500 and found["seconds"] == 50
    assert glance.eta(run, 0, None, now) is None
    assert glance.eta({"started_at": now, "processed": 0}, 0, 10, now)["seconds"] is None
    assert cli_status.duration(3725) == "1h02m" and cli_status.duration(75) == "1m15s"
