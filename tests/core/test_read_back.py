"""Reading back a batch of webhook events: one event the source refuses for good becomes
the only dead letter; the other events of its batch are applied."""

import pykka
import pytest

from syncd.config.model import IntegrationConfig
from syncd.connectors.connection import ConnectionActor
from syncd.engine import rules as R
from syncd.engine.coordinator import Coordinator, Progress
from syncd.engine.store import Store
from syncd.records import Event, Record
from syncd.testing import MemoryConnector, wait_for

pytestmark = pytest.mark.usefixtures("actors")


@pytest.fixture
def setup(tmp_path, memory_world):
    world_name, world = memory_world
    store = Store(str(tmp_path / "syncd.db"))
    refs = {n: ConnectionActor.start(MemoryConnector(n, {"world": world_name}))
            for n in ("src", "dst")}
    integration = IntegrationConfig("i", "src", "dst", batch_size=100, max_attempts=3,
                                    fields={"FirstName": "firstname"})
    caps = {"source": MemoryConnector.capabilities, "destination": MemoryConnector.capabilities}
    progress = Progress()
    coord = Coordinator.start(integration, R.Rules.from_integration(integration), store,
                              lambda n: refs[n].proxy(), progress=progress,
                              capabilities=caps).proxy()
    for i in range(100):
        world.put(Record(f"p{i:03d}", fields={"FirstName": f"n{i}"}, email=f"p{i}@x.nl"))
    yield world, store, coord, progress
    pykka.ActorRegistry.stop_all(block=True, timeout=10)
    store.close()


def test_one_poisoned_event_among_100_is_the_only_dead_letter(setup):
    world, store, coord, progress = setup
    world.poisoned = {"p042"}
    store.enqueue([("i", "src", Event(f"p{i:03d}")) for i in range(100)])
    coord.notify().get(timeout=5)
    assert wait_for(lambda: store.pending_count("i") == 0)
    dead = store.dead_letters("i")
    assert [d.event.record_id for d in dead] == ["p042"]
    assert "400" in dead[0].last_error and dead[0].attempts == 1
    assert len(world.profiles) == 99 and "p042" not in world.profiles
    assert progress.events_applied == 99 and progress.dead_letters == 1
    assert world.record_reads <= 15  # halving: about 2·log2(100) reads, not 100


def test_a_batch_with_two_poisoned_events_keeps_the_rest(setup):
    world, store, coord, _ = setup
    world.poisoned = {"p000", "p099"}
    store.enqueue([("i", "src", Event(f"p{i:03d}")) for i in range(100)])
    coord.notify().get(timeout=5)
    assert wait_for(lambda: store.pending_count("i") == 0)
    assert sorted(d.event.record_id for d in store.dead_letters("i")) == ["p000", "p099"]
    assert len(world.profiles) == 98


def test_a_retryable_read_back_error_keeps_the_batch_together(setup, monkeypatch):
    world, store, coord, _ = setup
    from syncd.exceptions import RemoteError

    def unavailable(self, events):
        self.world.record_reads += 1
        raise RemoteError("503 Service Unavailable", status=503, retryable=True)

    monkeypatch.setattr(MemoryConnector, "read_records", unavailable)
    store.enqueue([("i", "src", Event(f"p{i:03d}")) for i in range(10)])
    coord.notify().get(timeout=5)
    assert wait_for(lambda: store.inbox_counts().get("i", {}).get("pending") == 10 and all(
        it.attempts == 1 for it in store.pending("i", now=float("inf"))))
    assert world.record_reads == 1 and store.dead_letters("i") == []
