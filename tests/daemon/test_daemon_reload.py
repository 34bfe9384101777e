"""Reloads that fail while being applied roll back, and a slow reload never stops the main
loop's watchdog pings: the daemon in-process, real actors, receiver and SQLite file, and a
datagram socket standing in for systemd's notify socket."""

from __future__ import annotations

import pykka
from daemon_support import GATE, HELD, post_webhook, receive_until, wait_for, write_gated_config


def assert_serving_on(daemon, thread, world, config, record="p1"):
    """The daemon runs on ``config``, its actors are alive and a webhook still gets applied."""
    assert thread.is_alive() and not daemon.stopped.is_set()
    assert daemon.config is config
    assert daemon.connections["crm"].config == config.connections["crm"]
    assert wait_for(lambda: all(s.alive() for s in (*daemon.connections.values(),
                                                    *daemon.coordinators.values())))
    world.update(record, FirstName=f"after {record}")
    assert post_webhook(daemon, [record]).status_code == 200
    assert wait_for(lambda: world.profiles.get(record, {}).get("firstname") == f"after {record}")


def live_actors() -> int:
    return sum(1 for ref in pykka.ActorRegistry.get_all() if ref.is_alive())


def test_a_reload_whose_apply_times_out_rolls_back(make_daemon):
    make, world, cfg, name = make_daemon
    daemon, thread, client = make(ask_timeout=1.0)
    old = daemon.config
    actors = live_actors()
    write_gated_config(cfg, name, start="hold")  # valid, but crm's new actor never answers
    result = client.reload()
    assert result["ok"] is False
    assert "Timeout" in result["errors"][0] and "rolled back" in result["errors"][0]
    assert client.status()["reload_errors"] == result["errors"]
    assert_serving_on(daemon, thread, world, old)
    assert daemon.connections["crm"].config.options["start"] == "ok"
    GATE.set()  # the stuck actor gets free and stops: nothing is left running
    assert wait_for(lambda: live_actors() == actors)
    # the event is applied (the world shows it) just before it is marked done
    assert wait_for(lambda: daemon.store.pending_count() == 0)


def test_a_sighup_reload_whose_apply_raises_rolls_back(make_daemon):
    make, world, cfg, name = make_daemon
    daemon, thread, client = make()
    old = daemon.config
    write_gated_config(cfg, name, start="fail")
    daemon.request_reload()  # what SIGHUP does
    assert wait_for(lambda: daemon.last_reload is not None)
    assert daemon.last_reload["ok"] is False
    assert "the partner refused the connection" in daemon.last_reload["errors"][0]
    assert_serving_on(daemon, thread, world, old, record="p2")
    # the next good reload applies
    write_gated_config(cfg, name, start="ok")
    cfg.write_text(cfg.read_text().replace('FirstName = "firstname"',
                                           'FirstName = "first_name"'))
    assert client.reload()["ok"] is True
    assert daemon.config.integrations["main"].fields == {"FirstName": "first_name"}
    assert client.status()["reload_errors"] == []


def test_watchdog_pings_go_on_during_a_slow_reload(make_daemon, notify_socket):
    make, world, cfg, name = make_daemon
    daemon, thread, client = make()
    receive_until(notify_socket, "READY=1")
    write_gated_config(cfg, name, start="hold")
    daemon.request_reload()
    receive_until(notify_socket, "RELOADING=1")
    assert HELD.wait(10)  # the reload is stuck in crm's start
    for _ in range(3):  # more SIGHUPs meanwhile: coalesced into one more reload
        daemon.request_reload()
    pings = sum(receive_until(notify_socket, "WATCHDOG=1")[-1] == "WATCHDOG=1"
                for _ in range(5))
    assert pings == 5 and not GATE.is_set() and daemon.reloader.thread.is_alive()
    GATE.set()
    assert wait_for(lambda: not daemon.reloader.thread.is_alive()
                    and not daemon._reload_flag.is_set())
    assert daemon.last_reload["ok"] is True
    assert daemon.config.connections["crm"].options["start"] == "hold"
    notify_socket.setblocking(False)
    rest = []
    try:
        while True:
            rest.append(notify_socket.recv(4096).decode())
    except BlockingIOError:
        pass
    assert sum(m.startswith("RELOADING=1") for m in rest) == 1  # the coalesced one
    assert_serving_on(daemon, thread, world, daemon.config, record="p3")
