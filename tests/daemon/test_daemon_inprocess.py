"""The daemon in-process with the in-memory connector: real receiver, admin endpoint, actors
and SQLite file."""

import os
import threading

import pytest
import requests
from daemon_support import CONSENT, SECRET, post_webhook, wait_for, write_config

from syncd.app.admin import AdminClient
from syncd.exceptions import AdminError
from syncd.testing import sign


def test_full_sync_through_the_admin_endpoint(running):
    daemon, client, world, _, _ = running
    run_id = client.start_sync("main")["run_id"]
    assert wait_for(lambda: client.run(run_id)["status"] == "completed")
    run = client.run(run_id)
    assert run["created"] == 20 and run["errors"] == []
    assert client.runs("main")[0]["id"] == run_id
    status = client.status()
    assert status["integrations"]["main"]["last_run"]["id"] == run_id


def test_webhook_is_applied_and_bad_ones_are_not_queued(running):
    daemon, client, world, _, _ = running
    world.update("p03", FirstName="from webhook")
    assert post_webhook(daemon, ["p03"]).status_code == 200
    assert wait_for(lambda: world.profiles.get("p03", {}).get("firstname") == "from webhook")
    assert wait_for(lambda: daemon.store.pending_count() == 0)  # marked done after the write
    assert post_webhook(daemon, ["p04"], secret="wrong").status_code == 401
    body = b"not json"
    r = requests.post(f"{daemon.receiver.url}/webhooks/crm", data=body,
                      headers={"X-Memory-Signature": sign(SECRET, body)}, timeout=5)
    assert r.status_code == 400
    assert daemon.receiver_app.stats()["events"] == 1  # only the good one was queued
    # applied in the destination first, then marked done in the inbox (its own commit)
    assert wait_for(lambda: daemon.store.pending_count() == 0)
    assert "p04" not in world.profiles


def test_reload_with_a_bad_config_keeps_the_old_one(running):
    daemon, client, world, cfg, name = running
    good = cfg.read_text()
    cfg.write_text(good.replace("page_size = 7", "page_sise = 7"))
    result = client.reload()
    assert result["ok"] is False
    assert any("integrations.main.page_sise" in e and "page_size" in e
               for e in result["errors"])
    assert daemon.config.integrations["main"].page_size == 7
    # the daemon still works on the old config
    world.update("p05", FirstName="still working")
    assert post_webhook(daemon, ["p05"]).status_code == 200
    assert wait_for(lambda: world.profiles.get("p05", {}).get("firstname") == "still working")
    assert client.status()["reload_errors"]


def test_reload_that_changes_a_mapping_marks_a_full_sync_needed(running):
    daemon, client, world, cfg, name = running
    write_config(cfg, name, fields='FirstName = "first_name"')
    assert client.reload()["ok"] is True
    assert client.status()["integrations"]["main"]["needs_full_sync"] is True
    world.update("p06", FirstName="mapped anew")
    post_webhook(daemon, ["p06"])
    assert wait_for(lambda: world.profiles.get("p06", {}).get("first_name") == "mapped anew")


def test_reload_that_changes_conditions_needs_no_full_sync(running):
    daemon, client, world, cfg, name = running
    write_config(cfg, name, extra='[integrations.main.conditions]\nFirstName = "n1"')
    assert client.reload()["ok"] is True
    assert client.status()["integrations"]["main"]["needs_full_sync"] is False


def test_admin_refuses_a_wrong_token(running):
    daemon, _, _, _, _ = running
    with pytest.raises(AdminError):
        AdminClient("127.0.0.1", daemon.admin.port, "wrong").status()
    token_file = os.path.join(daemon.config.daemon.state_dir, "admin.token")
    assert os.stat(token_file).st_mode & 0o077 == 0


def test_cancel_through_the_admin_endpoint(running):
    daemon, client, world, _, _ = running
    world.page_gate = threading.Event()
    run_id = client.start_sync("main")["run_id"]
    assert wait_for(lambda: world.pages_read >= 1)
    assert client.cancel_sync("main")["run_id"] == run_id
    world.page_gate.set()
    assert wait_for(lambda: client.run(run_id)["status"] == "cancelled")


def test_a_crashed_connection_actor_is_restarted(running):
    daemon, client, world, _, _ = running
    sup = daemon.connections["crm"]
    old = sup.ref
    old.stop()
    assert wait_for(lambda: sup.ref is not old and sup.alive(), timeout=15)
    assert client.status()["connections"]["crm"]["restarts"] == 1
    world.update("p07", FirstName="after restart")
    post_webhook(daemon, ["p07"])
    assert wait_for(lambda: world.profiles.get("p07", {}).get("firstname") == "after restart")


def test_a_mapping_change_starts_a_full_sync_when_the_integration_asks(running):
    daemon, client, world, cfg, name = running
    write_config(cfg, name, fields='FirstName = "given_name"',
                 settings="full_sync_on_mapping_change = true")
    assert client.reload()["ok"] is True
    assert wait_for(lambda: (client.runs("main") or [{}])[0].get("status") == "completed")
    assert all(p.get("given_name") for p in world.profiles.values())
    assert len(world.profiles) == 20


def test_receiver_limits_by_default(running):
    daemon, client, _, _, _ = running
    assert daemon.receiver_app.max_body == 65536
    assert daemon.receiver.server.adj.connection_limit == 100 + 2  # + listener and trigger
    r = requests.post(f"{daemon.receiver.url}/webhooks/crm", data=b"x" * 70_000, timeout=5)
    assert r.status_code == 413
    assert client.status()["webhooks"]["reasons"] == {"too_large": 1}
    assert daemon.store.pending_count() == 0


def test_the_inbox_is_committed_with_synchronous_full_by_default(running):
    daemon, client, world, _, _ = running
    assert daemon.config.daemon.durability == "full"
    assert daemon.store.durability == "full"
    world.update("p07", FirstName="durable")
    assert post_webhook(daemon, ["p07"]).status_code == 200
    # the receiver's own connection (another thread) committed it with synchronous=FULL
    assert daemon.store._conn().execute("PRAGMA synchronous").fetchone()[0] == 2


def test_a_mapping_change_never_confirms_its_own_full_sync(running):
    """A reload that remaps a consent onto a label no record has would opt everyone out: the
    full sync it starts is unconfirmed, the guard holds past the share, `syncd status` says
    so, and only `syncd confirm` (through the admin endpoint) lets the rest go."""
    daemon, client, world, cfg, name = running
    for i in range(20):
        world.set_label(f"p{i:02d}", "Newsletter", True)
    settings = "full_sync_on_mapping_change = true\nconfirm_share = 0.1"
    write_config(cfg, name, settings=settings, extra=CONSENT.format(label="Newsletter"))
    assert client.reload()["ok"] is True
    assert wait_for(lambda: (client.runs("main") or [{}])[0].get("status") == "completed")
    assert all(c[("news", "email")] for c in world.consents.values()) and len(world.consents) == 20
    write_config(cfg, name, settings=settings, extra=CONSENT.format(label="Renamed"))
    assert client.reload()["ok"] is True
    assert wait_for(lambda: (client.runs("main") or [{}])[0].get("status")
                    == "needs_confirmation")
    opted_out = lambda: sum(1 for c in world.consents.values() if not c[("news", "email")])  # noqa: E731
    assert opted_out() == 10  # the minimum of 10, not 20
    guard = client.status()["integrations"]["main"]["guard"]
    assert (guard["count"], guard["limit"], guard["held"]) == (10, 10, {"consent": 10})
    assert guard["held_since"] and guard["confirm"] == "syncd confirm main"
    assert client.confirm("main")["records"] == 10
    assert wait_for(lambda: opted_out() == 20)
    guard = client.status()["integrations"]["main"]["guard"]
    assert guard["held_since"] is None and guard["count"] == 0


def test_webhooks_for_disabled_integrations_are_refused_with_503_not_dropped(running):
    daemon, client, world, cfg, name = running
    write_config(cfg, name, settings="enabled = false")
    assert client.reload()["ok"] is True
    world.update("p08", FirstName="while disabled")
    r = post_webhook(daemon, ["p08"])
    assert r.status_code == 503 and r.headers["Retry-After"]
    assert daemon.store.pending_count() == 0
    assert world.profiles.get("p08", {}).get("firstname") != "while disabled"
    write_config(cfg, name)
    assert client.reload()["ok"] is True
    assert post_webhook(daemon, ["p08"]).status_code == 200  # the sender delivers it again
    assert wait_for(lambda: world.profiles.get("p08", {}).get("firstname") == "while disabled")


def test_confirm_of_an_unknown_integration_is_a_404(running):
    _, client, _, _, _ = running
    with pytest.raises(AdminError) as refused:
        client.confirm("nope")
    assert refused.value.status == 404 and "nope" in str(refused.value)


def test_coordinator_timers_are_jobs_of_the_daemon_scheduler_and_reloads_leave_none(running):
    """The consent poll is a one-shot job of the daemon's APScheduler (not listed as a job of
    `syncd status`); a reload that disables the integration removes it, one that enables it
    again sets exactly one."""
    daemon, client, world, cfg, name = running

    def timers():
        return sorted(j.id for j in daemon.scheduler._scheduler.get_jobs()
                      if j.id.startswith("timer:main#"))

    assert timers() == []  # no consents mapped: no poll
    write_config(cfg, name, extra=CONSENT.format(label="Newsletter"))
    assert client.reload()["ok"] is True
    assert [t.rsplit(":", 1)[1] for t in timers()] == ["consent_poll"]
    assert all(not j["id"].startswith("timer:") for j in daemon.scheduler.jobs())
    write_config(cfg, name, settings="enabled = false", extra=CONSENT.format(label="Newsletter"))
    assert client.reload()["ok"] is True
    assert timers() == []
    write_config(cfg, name, extra=CONSENT.format(label="Newsletter"))
    assert client.reload()["ok"] is True
    assert wait_for(lambda: [t.rsplit(":", 1)[1] for t in timers()] == ["consent_poll"])
