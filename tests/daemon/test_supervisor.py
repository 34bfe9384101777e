"""The supervisor as the daemon composes it: given only the progress and the main loop's
wake-up event, it keeps real actors alive with back-off."""

from __future__ import annotations

import threading

import pykka
import pytest

from syncd.app.supervision import Supervised, Supervisor
from syncd.engine.progress import Progress
from syncd.exceptions import SyncdError


class Pinger(pykka.ThreadingActor):
    def ping(self) -> str:
        return "pong"

    def notify(self) -> None:
        pass


@pytest.fixture
def supervisor():
    wake = threading.Event()
    sup = Supervisor({"main": Progress()}, wake)
    yield sup, wake
    for s in sup.all():
        sup.stop(s, timeout=5)


def test_a_dead_actor_is_restarted_after_its_back_off_and_counted(supervisor):
    sup, wake = supervisor
    starts = []

    def start() -> pykka.ActorRef:
        starts.append(1)
        return Pinger.start()

    actor = Supervised("main", "coordinator", start)
    sup.first_start(actor, supervise=False)
    assert sup.coordinators["main"] is actor and actor.alive()
    actor.ref.stop()
    sup.actor_failed("main", RuntimeError("boom"))
    assert wake.is_set() and actor.last_failure == "RuntimeError: boom"
    sup.supervise(backoff_max=0.0)  # notices the death: restart after the back-off
    assert not actor.alive() and actor.next_restart > 0
    sup.supervise(backoff_max=0.0)  # the back-off (capped at 0 s) has passed
    assert actor.alive() and actor.restarts == 1 and len(starts) == 2
    assert sup.coordinator("main").ping().get(timeout=5) == "pong"


def test_a_failed_first_start_raises_unless_supervised(supervisor):
    sup, _ = supervisor

    def broken() -> pykka.ActorRef:
        raise ConnectionError("no account")

    with pytest.raises(ConnectionError):
        sup.first_start(Supervised("crm", "connection", broken), supervise=False)
    assert "crm" not in sup.connections
    sup.first_start(Supervised("crm", "connection", broken), supervise=True)
    assert sup.connections["crm"].last_failure == "ConnectionError: no account"
    with pytest.raises(pykka.ActorDeadError):
        sup.connection("crm")
    with pytest.raises(KeyError):
        sup.coordinator("nothing")


def test_a_coordinator_that_restarts_is_refused_with_a_reason(supervisor):
    sup, _ = supervisor
    actor = Supervised("main", "coordinator", Pinger.start)
    sup.first_start(actor, supervise=False)
    actor.ref.stop()
    with pytest.raises(SyncdError, match="restarting"):
        sup.coordinator("main")
