"""The sync property: after any interleaving of CRM changes (fields, labels, selections),
opt-outs made in the destination and one full sync, both sides agree as the rules say: the
destination holds the CRM's records filtered and mapped, each consent is opted in exactly
where the CRM shows the label (opt-outs were written back), each tag set exactly where the
CRM shows the selection.

Real coordinator actor, real SQLite store, in-memory connectors; each CRM change is followed
by its webhook event in the inbox, as the receiver would store it.
"""

import tempfile
import threading
from dataclasses import replace
from functools import partial

import pykka
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd import testing
from syncd.config.model import Condition, ConsentMapping, IntegrationConfig
from syncd.connector import ConnectionActor
from syncd.coordinator import Coordinator
from syncd.records import Event, Record
from syncd.rules import Rules, expected_view, matches, to_profile
from syncd.store import Store
from syncd.testing import WORLDS, MemoryConnector, World

wait_for = partial(testing.wait_for, timeout=20.0)

IDS = [f"p{i}" for i in range(8)]

change = st.tuples(
    st.sampled_from(IDS),
    st.sampled_from(["FirstName", "CustomerType", "email", "Contact.Organization.Name"]),
    st.sampled_from(["A", "B", "x", "", None]),
)
label = st.tuples(st.just("label"), st.sampled_from(IDS), st.booleans())
selection = st.tuples(st.just("selection"), st.sampled_from(IDS), st.booleans())
optout = st.tuples(st.just("optout"), st.sampled_from(IDS), st.booleans())
ops = st.lists(st.one_of(change, label, selection, optout, st.just("sync")),
               min_size=1, max_size=25)



@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(initial=st.lists(st.sampled_from(["A", "B"]), min_size=3, max_size=len(IDS)),
       operations=ops)
def test_destination_ends_equal_to_the_source_under_the_rules(initial, operations):
    world = World()
    name = f"prop-{id(world)}"
    WORLDS[name] = world
    for i, ctype in enumerate(initial):
        world.put(Record(IDS[i], fields={"FirstName": f"n{i}", "CustomerType": ctype},
                         email=f"{IDS[i]}@example.nl"))
    world.page_gate = threading.Event()
    integration = IntegrationConfig(
        "i", "src", "dst", conditions=(Condition("CustomerType", "A"),),
        fields={"FirstName": "firstname", "Contact.Organization.Name": "company"},
        consents=(ConsentMapping("Newsletter", "news", "email"),), selections={"VIP": "vip"},
        page_size=2, batch_size=3, confirm_share=1.0)
    rules = Rules.from_integration(integration)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"{tmp}/syncd.db")
        refs = {n: ConnectionActor.start(MemoryConnector(n, {"world": name}))
                for n in ("src", "dst")}
        caps = {"source": MemoryConnector.capabilities,
                "destination": MemoryConnector.capabilities}
        coord = Coordinator.start(integration, rules, store, lambda n: refs[n].proxy(),
                                  capabilities=caps).proxy()
        try:
            run_id = None
            if "sync" not in operations:
                operations = [*operations, "sync"]
            for op in operations:
                if op == "sync":
                    if run_id is None:
                        run_id = coord.start_full_sync().get(timeout=5)
                    world.page_gate.set()  # let pages flow from here on
                    continue
                if op[0] in ("label", "selection", "optout"):
                    kind, record_id, flag = op
                    if record_id not in world.records:
                        continue
                    if kind == "optout":
                        world.unsubscribe(record_id, "news", "email")
                        if flag:  # the poll may come at once or later
                            coord.run_job("consent_changes", {})
                        continue
                    if kind == "label":
                        world.set_label(record_id, "Newsletter", flag)
                    else:
                        with world.lock:
                            old = world.records[record_id]
                            sels = set(old.selections) | {"VIP"} if flag else set()
                            world.put(replace(old, selections=frozenset(sels)))
                    store.enqueue([("i", "src", Event(record_id))])
                    coord.notify()
                    continue
                record_id, field, value = op
                with world.lock:
                    if record_id not in world.records:
                        world.put(Record(record_id, fields={}, email=None))
                    if field == "email":
                        world.update(record_id, email=value)
                    else:
                        world.update(record_id, **{field: value})
                store.enqueue([("i", "src", Event(record_id))])
                coord.notify()
            world.page_gate.set()
            assert wait_for(lambda: store.run(run_id)["status"] != "running")
            assert store.run(run_id)["status"] == "completed"
            assert wait_for(lambda: store.pending_count("i") == 0)
            coord.run_job("consent_changes", {}).get(timeout=10)  # the poll comes at last
            assert wait_for(lambda: store.pending_count("i") == 0)
            coord.ping().get(timeout=5)  # the last drain has finished
            # write-backs changed the CRM; their webhooks arrive like any change
            store.enqueue([("i", "src", Event(r)) for r in list(world.records)])
            coord.notify()
            assert wait_for(lambda: store.pending_count("i") == 0)
            coord.ping().get(timeout=5)
            with world.lock:
                expected = {
                    r.id: expected_view(to_profile(rules, r), "email", "crm_id")
                    for r in world.records.values() if matches(rules.conditions, r)
                }
                actual = dict(world.profiles)
            for key, view in expected.items():
                assert actual.get(key) == view, key
            with world.lock:
                for record in world.records.values():
                    if not matches(rules.conditions, record):
                        continue
                    consent = world.consents.get(record.id, {}).get(("news", "email"), False)
                    assert consent == ("Newsletter" in record.labels), record.id
                    tag = world.tags.get(record.id, {}).get("vip", False)
                    assert tag == ("VIP" in record.selections), record.id
            # a profile of a record that does not match now was synced while it matched
            # (it is not deleted), never created for a record that never matched
            for key in set(actual) - set(expected):
                assert store.links("i", [key]), key
        finally:
            pykka.ActorRegistry.stop_all(block=True, timeout=10)
            store.close()
            WORLDS.pop(name, None)
