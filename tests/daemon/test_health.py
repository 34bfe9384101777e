"""Liveness (the watchdog's condition) and readiness, with real actors and a real store."""

from __future__ import annotations

import threading
from functools import partial
from types import SimpleNamespace

import pykka
import requests
from daemon_support import receive_until

from syncd import testing
from syncd.app.health import Liveness, readiness, store_writable
from syncd.app.supervision import Supervised
from syncd.testing import free_port

wait_for = partial(testing.wait_for, timeout=15.0)


class Sleeper(pykka.ThreadingActor):
    def __init__(self, gate: threading.Event):
        super().__init__()
        self.gate = gate

    def ping(self) -> str:
        return "sleeper"

    def block(self) -> None:
        self.gate.wait(30)


def test_a_hung_actor_withholds_the_watchdog_a_dead_one_does_not():
    gate = threading.Event()
    ref = Sleeper.start(gate)
    sup = Supervised("crm", "connection", lambda: ref, ref=ref)
    daemon = SimpleNamespace(connections={"crm": sup}, coordinators={}, receiver=None)
    live = Liveness(daemon, actor_hang=0.2)
    try:
        live.probe()
        assert wait_for(lambda: (live.probe(), live.alive())[1])
        ref.proxy().block()  # busy: the next ping waits behind it
        live.probe()
        assert wait_for(lambda: (live.probe(), not live.alive())[1])
        assert "connection:crm has not answered" in live.problems()[0]
        gate.set()
        assert wait_for(lambda: (live.probe(), live.alive())[1])
        ref.stop()  # dead: supervision's business, not the watchdog's
        live.probe()
        assert live.alive()
    finally:
        gate.set()
        pykka.ActorRegistry.stop_all()


def test_store_not_writable_is_named(tmp_path):
    path = tmp_path / "syncd.db"
    assert store_writable(str(path)) is None
    assert "not writable" in store_writable(str(tmp_path / "gone" / "syncd.db"))


def test_readyz_follows_fail_fast_and_the_guard(running):
    daemon, client, world, cfg, name = running
    base = f"http://127.0.0.1:{daemon.admin.port}"
    assert wait_for(lambda: requests.get(base + "/readyz", timeout=5).status_code == 200)
    assert readiness(daemon) == []
    daemon.progress["main"].paused = "every write failed with 400"
    answer = requests.get(base + "/readyz", timeout=5)
    assert answer.status_code == 503
    assert answer.json()["reasons"] == ["main: paused by fail-fast: every write failed with 400"]
    daemon.progress["main"].paused = None
    daemon.store.guard_admit("main", [], [("consent", "p01")], "over the limit", 86400)
    answer = requests.get(base + "/readyz", timeout=5)
    assert answer.status_code == 503
    assert "main: held by the guard" in answer.json()["reasons"][0]
    assert "syncd confirm main" in answer.json()["reasons"][0]
    client.confirm("main")
    assert requests.get(base + "/readyz", timeout=5).status_code == 200
    assert requests.get(base + "/healthz", timeout=5).json() == {"status": "ok"}


def test_the_watchdog_is_withheld_while_an_actor_hangs(make_daemon, notify_socket):
    """The daemon's main loop pings WATCHDOG=1 only while its actors answer: a connection
    stuck in a write (and the coordinator waiting on it) stops the pings; they resume once
    it answers again."""
    make, world, cfg, name = make_daemon
    daemon, thread, client = make()
    receive_until(notify_socket, "READY=1")
    receive_until(notify_socket, "WATCHDOG=1")
    daemon.liveness.actor_hang = 0.3
    loops = [0]
    housekeeping = daemon._housekeeping

    def counted():
        loops[0] += 1
        housekeeping()

    daemon._housekeeping = counted
    stuck, release = threading.Event(), threading.Event()
    world.before_write = lambda profiles: (stuck.set(), release.wait(30))
    try:
        client.start_sync("main")
        assert stuck.wait(10)
        assert wait_for(lambda: daemon.liveness.problems())
        assert "has not answered" in daemon.liveness.problems()[0]
        notify_socket.setblocking(False)
        _drain(notify_socket)
        seen = loops[0]
        assert wait_for(lambda: loops[0] >= seen + 5)  # five turns of the main loop
        assert "WATCHDOG=1" not in _drain(notify_socket)
    finally:
        release.set()
        world.before_write = None
    notify_socket.setblocking(True)
    receive_until(notify_socket, "WATCHDOG=1")  # answered again: pinged again


def _drain(sock) -> list[str]:
    out = []
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        return out


def test_metrics_port_serves_metrics_and_health_only(memory_daemon):
    port = free_port()
    d, *_ = memory_daemon(records=0, admin=f"metrics_port = {port}")
    base = f"http://127.0.0.1:{port}"
    metrics = requests.get(base + "/metrics", timeout=5)
    assert metrics.status_code == 200 and "syncd_inbox_depth" in metrics.text
    assert requests.get(base + "/healthz", timeout=5).status_code == 200
    assert requests.get(base + "/status", timeout=5).status_code == 404  # no admin here
    assert requests.post(base + "/metrics", timeout=5).status_code == 405
    d.stop()
    assert not d.thread.is_alive()
