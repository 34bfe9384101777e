"""Liveness (the watchdog's condition) and readiness, with real actors and a real store."""

from __future__ import annotations

import threading
from functools import partial
from types import SimpleNamespace

import pykka
import requests
from test_daemon_inprocess import running  # noqa: F401  (the fixture)

from syncd import testing
from syncd.health import Liveness, readiness, store_writable
from syncd.supervision import Supervised

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


def test_readyz_follows_fail_fast_and_the_guard(running):  # noqa: F811
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
