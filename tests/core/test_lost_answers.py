"""Tags and consents whose write was applied but whose answer was lost (the memory
destination's ``lose_answers``): the source's change back is written, and the
stop-and-confirm guard counts each consent flip once. Real coordinator actors, a real SQLite
file, the memory connector."""

import pykka
import pytest

from syncd.config.model import ConsentMapping, IntegrationConfig
from syncd.connectors.connection import ConnectionActor
from syncd.engine import rules as R
from syncd.engine.coordinator import Coordinator, Progress
from syncd.engine.guard import guard_status
from syncd.engine.store import Store
from syncd.records import Event, Record
from syncd.testing import MemoryConnector, wait_for

pytestmark = pytest.mark.usefixtures("actors")

NEWS = ConsentMapping("Newsletter", "news", "email")
KEY = ("news", "email")


class World:
    """One coordinator (real-time events, one attempt each) over a memory world."""

    def __init__(self, tmp_path, memory_world):
        world_name, self.world = memory_world
        self.store = Store(str(tmp_path / "syncd.db"))
        refs = {n: ConnectionActor.start(MemoryConnector(n, {"world": world_name}))
                for n in ("src", "dst")}
        self.integration = IntegrationConfig(
            "i", "src", "dst", consents=(NEWS,), selections={"VIP": "vip"}, max_attempts=1,
            confirm_share=0.1)
        caps = {"source": MemoryConnector.capabilities,
                "destination": MemoryConnector.capabilities}
        self.coord = Coordinator.start(self.integration, R.Rules.from_integration(
            self.integration), self.store, lambda n: refs[n].proxy(), progress=Progress(),
            capabilities=caps).proxy()
        self.world.put(Record("p0", email="p0@example.nl"))

    def change(self, labels=(), selections=(), lose=False):
        """The source's record becomes this; its event is applied (lose: the destination
        applies the write, then its answer is lost)."""
        self.world.put(Record("p0", email="p0@example.nl", labels=frozenset(labels),
                              selections=frozenset(selections)))
        (self.world.lose_answers.add if lose else self.world.lose_answers.discard)("p0")
        self.store.enqueue([("i", "src", Event("p0"))])
        self.coord.notify().get(timeout=5)
        assert wait_for(lambda: self.store.pending_count("i") == 0)

    def dead(self) -> int:
        return len(self.store.dead_letters("i"))

    def flips_counted(self) -> int:
        return guard_status(self.store, self.integration)["count"]


@pytest.fixture
def w(tmp_path, memory_world):
    world = World(tmp_path, memory_world)
    yield world
    pykka.ActorRegistry.stop_all(block=True, timeout=10)  # no actor uses a closed store
    world.store.close()


def test_a_tag_set_whose_answer_was_lost_is_cleared_when_the_source_goes_back(w):
    w.change()
    w.change(selections={"VIP"}, lose=True)
    assert w.world.tags["p0"] == {"vip": True} and w.dead() == 1  # applied, answer lost
    w.change()
    assert w.world.tags["p0"] == {"vip": False}


def test_an_opt_in_whose_answer_was_lost_is_opted_out_when_the_source_goes_back(w):
    w.change()  # a profile without the consent (a new profile's opt-out is not sent)
    w.change(labels={"Newsletter"}, lose=True)
    assert w.world.consents["p0"] == {KEY: True} and w.dead() == 1
    w.change()
    assert w.world.consents["p0"] == {KEY: False}
    # the opt-out syncd sent is its own, never taken for a person's unsubscribe
    assert w.store.links("i", ["p0"])["p0"].state["w"] == ["news|email"]


def test_an_opt_in_in_flight_then_an_opt_out_counts_once_toward_the_guard(w):
    w.change(labels={"Newsletter"})
    w.change()  # opted out: one flip
    assert w.flips_counted() == 1
    w.change(labels={"Newsletter"}, lose=True)  # opted in again (a flip), answer lost
    assert w.world.consents["p0"] == {KEY: True} and w.flips_counted() == 2
    w.change()  # the opt-out over the opt-in that may have landed: a flip, counted
    assert w.world.consents["p0"] == {KEY: False} and w.flips_counted() == 3


def test_a_rerun_after_a_lost_answer_counts_its_flip_once(w):
    w.change(labels={"Newsletter"})
    w.change(lose=True)  # the opt-out flips, counted once; its answer is lost
    assert w.world.consents["p0"] == {KEY: False} and w.flips_counted() == 1
    w.change()  # the same record again (a retry, a full sync): sent, not counted again
    assert w.world.consents["p0"] == {KEY: False} and w.flips_counted() == 1
    history = [h for h in w.world.history if h[0] == "consent"]
    assert [h[-1] for h in history] == [True, False, False]
    link = w.store.links("i", ["p0"])["p0"]
    assert link.digest is not None and "f" not in link.state  # the answer confirmed it
    w.change()  # and once answered, the same record is unchanged: nothing is sent
    assert len([h for h in w.world.history if h[0] == "consent"]) == 3


def test_what_a_write_sends_is_recorded_in_flight_before_it_is_sent(w):
    """A kill after the destination applied a write leaves what was committed before the
    send: the link must already hold the tag and consent as in flight (no digest), so that
    the next process sends them again whatever the source says then."""
    w.change()
    seen = []

    def before_write(profiles):  # in the destination, before it applies the write
        link = w.store.links("i", ["p0"])["p0"]
        seen.append((link.digest, link.state.get("f")))

    w.world.before_write = before_write
    w.change(labels={"Newsletter"}, selections={"VIP"})
    assert seen == [(None, {"c": ["news|email"], "t": ["vip"]})]
    link = w.store.links("i", ["p0"])["p0"]
    assert link.digest is not None and "f" not in link.state  # the answer came
