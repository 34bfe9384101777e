"""An unsubscribe that names no topic is resolved only through opt-outs syncd did not write
(issue 8 point 5): an opt-out syncd wrote itself, perhaps by mistake, must not become a label
removal in the source. Real actors, a real SQLite file, the APSIS One emulator; the source is
the in-memory connector (it records what is written back)."""

import time

import pykka
import pytest
from syncd_apsis.connector import ApsisConnector

from syncd.config.model import ConsentMapping, IntegrationConfig
from syncd.connectors.connection import ConnectionActor
from syncd.engine.coordinator import Coordinator, Progress
from syncd.engine.rules import Rules
from syncd.engine.store import Store
from syncd.records import Event, Record
from syncd.testing import MemoryConnector, wait_for

pytestmark = pytest.mark.usefixtures("actors")
NEWSLETTER = "com.apsis1.topics.newsletter"
OFFERS = "com.apsis1.topics.offers"
LABEL = "Newsletter"


def test_a_syncd_written_opt_out_is_not_turned_into_a_label_removal(tmp_path, memory_world,
                                                                     emu):
    world_name, world = memory_world
    store = Store(str(tmp_path / "syncd.db"))
    config = {**ApsisConnector.sandbox_config(emu), "backoff": 0.02,
              "export_poll_interval": 0.05,
              "export_topic_column": "not_in_the_file"}  # rows name no topic
    config.pop("kind")
    refs = {"src": ConnectionActor.start(MemoryConnector("src", {"world": world_name})),
            "dst": ConnectionActor.start(ApsisConnector("dst", config))}
    integration = IntegrationConfig("i", "src", "dst", consents=(
        ConsentMapping(LABEL, NEWSLETTER, "email"),))
    caps = {"source": MemoryConnector.capabilities, "destination": ApsisConnector.capabilities}
    coord = Coordinator.start(integration, Rules.from_integration(
        integration, ApsisConnector.canonical_attribute), store, lambda n: refs[n].proxy(),
        progress=Progress(), capabilities=caps).proxy()
    try:
        for key in ("p1", "p2"):
            world.put(Record(key, email=f"{key}@example.nl", labels=frozenset({LABEL}),
                             label_times={LABEL: "2026-01-01T00:00:00+00:00"}))
        run_id = coord.start_full_sync().get(timeout=5)
        assert wait_for(lambda: store.run(run_id)["status"] == "completed", 30)
        assert emu.consents("p1")[(NEWSLETTER, "com.apsis1.channels.email")] == "opt-in"
        coord.run_job("consent_changes", {}).get(timeout=30)  # from now on

        # syncd opts p1 out (a label read that went wrong, say), then the label reads right
        world.set_label("p1", LABEL, False)
        store.enqueue([("i", "src", Event("p1"))])
        coord.notify()
        assert wait_for(lambda: emu.consents("p1")[(NEWSLETTER, "com.apsis1.channels.email")]
                        == "opt-out")
        assert wait_for(lambda: store.pending_count("i") == 0)
        assert NEWSLETTER + "|email" in store.links("i", ["p1"])["p1"].state["w"]
        world.set_label("p1", LABEL, True)  # no event: syncd's opt-out stands in APSIS

        # p1 unsubscribes from offers (not mapped): the row names no topic; its only
        # newsletter opt-out is syncd's own. p2 unsubscribes from the newsletter itself.
        emu.unsubscribe("p1", OFFERS, duplicate=False)
        emu.unsubscribe("p2", NEWSLETTER, duplicate=False)
        time.sleep(0.003)  # past the millisecond of the last event (half-open windows)
        coord.run_job("consent_changes", {}).get(timeout=30)

        assert LABEL in world.records["p1"].labels  # syncd's own opt-out: unresolved
        assert "p1" not in world.written_back
        assert LABEL not in world.records["p2"].labels  # a person's: written back
        assert world.written_back == ["p2"]
    finally:
        pykka.ActorRegistry.stop_all(block=True, timeout=10)
        store.close()
