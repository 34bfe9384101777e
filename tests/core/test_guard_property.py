"""The stop-and-confirm property (issue 8's acceptance): for random interleavings of label
reads that fail, come back empty or come back malformed, with webhooks, daily creation,
overview imports, full syncs, unsubscribes written back, deletes in the source, crashes
mid-run and restarts (a new actor on the same SQLite file), the consent flips and deletes
syncd makes never exceed the guard's share, as long as nobody confirms.

The memory connector counts what syncd really changes (a write that changes a consent the
destination holds, a delete of a profile that exists, a label removed in the source), so
the test judges the outcome, not the guard's own count.
"""

import tempfile
from dataclasses import replace

import pykka
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.config.model import Condition, ConsentMapping, IntegrationConfig
from syncd.connectors.connection import ConnectionActor
from syncd.engine import rules as R
from syncd.engine.coordinator import Coordinator, Progress
from syncd.engine.store import Store
from syncd.records import Event, Record
from syncd.testing import WORLDS, MemoryConnector, World, run_job_to_end, wait_for

N = 40
SHARE = 0.3
LIMIT = 12  # the share of the profiles syncd keeps: 30 % of 40
IDS = [f"r{i:02d}" for i in range(N)]
NEWS = ConsentMapping("Newsletter", "news", "email")
FUTURE = "2099-01-01T00:00:00Z"


class CountingConnector(MemoryConnector):
    """The memory connector, counting the sensitive changes that really happen."""

    def write_profiles(self, profiles, known):
        w = self.world
        with w.lock:
            for p in profiles:
                held = w.consents.get(p.key, {})
                if p.key in w.profiles and any(
                        held.get((c.topic, c.channel)) not in (None, c.opted_in)
                        for c in p.consents):
                    w.sensitive.append(("flip", p.key))
            return super().write_profiles(profiles, known)

    def delete_profiles(self, keys):
        w = self.world
        with w.lock:
            w.sensitive.extend(("delete", k) for k in keys if k in w.profiles)
            return super().delete_profiles(keys)

    def write_consents(self, record_id, labels):
        w = self.world
        with w.lock:
            record = w.records.get(record_id)
            if record is not None and any(not on and label in record.labels
                                          for label, on in labels.items()):
                w.sensitive.append(("writeback", record_id))
            return super().write_consents(record_id, labels)


ids = st.lists(st.sampled_from(IDS), min_size=1, max_size=N, unique=True)
op = st.one_of(
    st.tuples(st.just("labels"), st.sampled_from(["ok", "fail", "empty", "malformed"])),
    st.tuples(st.just("webhooks"), ids),
    st.tuples(st.just("daily"), st.just(None)),
    st.tuples(st.just("overview"), st.just(None)),
    st.tuples(st.just("full_sync"), st.just(None)),
    st.tuples(st.just("crash_mid_sync"), st.just(None)),
    st.tuples(st.just("restart"), st.just(None)),
    st.tuples(st.just("unsubscribe"), ids),
    st.tuples(st.just("delete"), ids),
    st.tuples(st.just("unmatch"), ids),
    st.tuples(st.just("unlabel"), ids),
)


class Daemonish:
    """What the daemon does with one integration: a coordinator over a store file; on a
    restart, runs left running are interrupted and the latest full sync is resumed."""

    def __init__(self, path, world_name):
        self.path = path
        self.refs = {n: ConnectionActor.start(CountingConnector(n, {"world": world_name}))
                     for n in ("src", "dst")}
        self.integration = IntegrationConfig(
            "i", "src", "dst", conditions=(Condition("CustomerType", "A"),),
            consents=(NEWS,), delete_unmatched=True, confirm_share=SHARE, page_size=10,
            batch_size=15, consent_poll_interval=3600)
        self.start()

    def start(self):
        self.store = Store(self.path)
        caps = {"source": MemoryConnector.capabilities,
                "destination": MemoryConnector.capabilities}
        self.ref = Coordinator.start(self.integration, R.Rules.from_integration(self.integration),
                                     self.store, lambda n: self.refs[n].proxy(),
                                     progress=Progress(), capabilities=caps)
        self.coord = self.ref.proxy()
        self.store.interrupt_running()
        latest = self.store.latest_run("i", "full")
        if latest is not None and latest["status"] == "interrupted":
            self.wait(self.coord.start_full_sync(latest).get(timeout=10))

    def restart(self):
        self.ref.stop(block=True, timeout=30)
        self.store.close()
        self.start()

    def wait(self, run_id):
        assert wait_for(lambda: self.store.run(run_id)["status"] != "running", 30)

    def settle(self):
        """Until every event was tried at least once (those failing wait for a retry)."""
        self.coord.notify().get(timeout=10)
        assert wait_for(lambda: all(i.attempts for i in self.store.pending(
            "i", limit=10_000, now=float("inf"))), 30)

    def close(self):
        pykka.ActorRegistry.stop_all(block=True, timeout=30)
        self.store.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=st.lists(op, min_size=1, max_size=12))
def test_no_more_flips_and_deletes_than_the_share_without_a_confirm(operations):
    world = World(consents_from_start=True)
    world.sensitive = []
    name = f"guard-{id(world)}"
    WORLDS[name] = world
    for rid in IDS:
        world.put(Record(rid, fields={"CustomerType": "A"}, email=f"{rid}@x.nl",
                         modified_at=FUTURE))
        world.set_label(rid, "Newsletter", True, at="2026-01-01T00:00:00+00:00")
    world.groups["VIPs"] = set(IDS[::2])
    limit = LIMIT
    with tempfile.TemporaryDirectory() as tmp:
        d = Daemonish(f"{tmp}/syncd.db", name)
        try:
            d.wait(d.coord.start_full_sync().get(timeout=10))
            assert len(world.profiles) == N and world.sensitive == []
            for kind, arg in operations:
                if kind == "labels":
                    world.label_reads = arg
                elif kind == "webhooks":
                    d.store.enqueue([("i", "src", Event(i)) for i in arg])
                    d.settle()
                elif kind == "daily":
                    run_job_to_end(d.coord, "daily_creation")
                elif kind == "overview":
                    run_job_to_end(d.coord, "overview", {"overview": "VIPs", "tag": "vip"})
                elif kind == "full_sync":
                    d.wait(d.coord.start_full_sync().get(timeout=10))
                elif kind == "crash_mid_sync":
                    d.coord.start_full_sync().get(timeout=10)
                    d.restart()  # stops after its first page; resumed on start
                elif kind == "restart":
                    d.restart()
                elif kind == "unsubscribe":
                    for rid in arg:
                        world.unsubscribe(rid, "news", "email")
                    d.coord.run_job("consent_changes", {}).get(timeout=30)
                elif kind == "delete":
                    with world.lock:
                        for rid in arg:
                            world.records.pop(rid, None)
                elif kind == "unmatch":
                    for rid in arg:
                        if rid in world.records:
                            world.update(rid, CustomerType="B")
                elif kind == "unlabel":
                    for rid in arg:
                        if rid in world.records:
                            world.set_label(rid, "Newsletter", False)
                            world.put(replace(world.records[rid], modified_at=FUTURE))
                assert len(world.sensitive) <= limit, (kind, world.sensitive)
            world.label_reads = "ok"
            d.store.enqueue([("i", "src", Event(i)) for i in IDS])  # everything, once more
            d.settle()
            d.wait(d.coord.start_full_sync().get(timeout=10))
            assert len(world.sensitive) <= limit, world.sensitive
        finally:
            d.close()
            WORLDS.pop(name, None)
