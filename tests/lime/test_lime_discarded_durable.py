"""The Lime consent messages discarded by seed 003's rule (no person, or no consent type) are
counted in the state store, not in memory: after a restart of the daemon ``syncd status``
and ``/metrics`` still show them, with each message's reason and consent id (the last
ones), and the count goes on from there. Against the emulators, a real in-process daemon
and one SQLite file."""

from __future__ import annotations

import pytest
from syncd_apsis.emulator import ApsisEmulator
from syncd_lime.emulator import LimeEmulator

from syncd.connectors.ledger import NOTES_KEPT, Ledger
from syncd.engine.ledgerstore import StoreLedger
from syncd.engine.store import Store
from syncd.testing import wait_for
from tests.lime.lime_daemon import lime_config, running, scrape, settle, write_config

NO_PERSON = "consent without a person"
METRIC = "syncd_connection_discarded_messages_total"


@pytest.fixture
def world(tmp_path):
    lime = LimeEmulator(seed=2, delivery_backoff=0.02)
    lime.seed(10, seed=2)
    apsis = ApsisEmulator(seed=3)
    for emu in (lime, apsis):
        emu.start()
    path = write_config(str(tmp_path / "syncd.toml"),
                        lime_config(str(tmp_path / "state"), apsis, {"crm": (lime, {})}))
    try:
        yield path, lime, apsis
    finally:
        for emu in (lime, apsis):
            emu.stop()


def discard_one(daemon, lime: LimeEmulator) -> int:
    """A consent saved without a person, delivered and discarded; its id."""
    assert wait_for(lambda: lime.webhooks(), 10)  # syncd's subscription is registered
    types = {t["title"]: t["_id"] for t in lime.store.objects["consenttype"].values()}
    made = lime.create("consent", {"approved": True, "consenttype": types["Newsletter"]})
    lime.wait_deliveries(10)
    settle(daemon, "crm-sync")
    return int(made["_id"])


def test_the_discarded_count_and_its_reasons_outlive_a_restart(world):
    path, lime, apsis = world
    with running(path) as daemon:
        first = discard_one(daemon, lime)
        stats = daemon.control.status()["connections"]["crm"]["stats"]
        assert stats["discarded"] == {NO_PERSON: 1}
        assert apsis.snapshot() == {}  # nothing else changed
    with running(path) as daemon:  # a new process's connector: nothing in memory
        stats = daemon.control.status()["connections"]["crm"]["stats"]
        assert stats["discarded"] == {NO_PERSON: 1}
        [note] = stats["discarded_recent"]
        assert note["reason"] == NO_PERSON
        assert note["detail"]["consent"] == str(first)
        assert note["detail"]["lime_event"] in ("consent.new", None)
        samples = scrape(daemon)
        assert samples[(METRIC, (("connection", "crm"), ("reason", NO_PERSON)))] == 1
        second = discard_one(daemon, lime)  # the count goes on from the stored one
        stats = daemon.control.status()["connections"]["crm"]["stats"]
        assert stats["discarded"] == {NO_PERSON: 2}
        assert [n["detail"]["consent"] for n in stats["discarded_recent"]] == \
            [str(second), str(first)]
        assert scrape(daemon)[(METRIC, (("connection", "crm"), ("reason", NO_PERSON)))] == 2


@pytest.mark.parametrize("make", ["memory", "store"])
def test_a_ledger_counts_per_reason_and_keeps_the_last_notes(tmp_path, make):
    store = Store(str(tmp_path / "syncd.db"))
    ledger = Ledger() if make == "memory" else StoreLedger(store, "crm")
    other = Ledger() if make == "memory" else StoreLedger(store, "other")
    for i in range(NOTES_KEPT + 5):
        ledger.count("discarded", "no person" if i % 2 else "no type", consent=i,
                     note="x" * 1000, values={"secret": "kept out as text only"})
    other.count("discarded", "no person")
    assert ledger.counts("discarded") == {"no person": 52, "no type": 53}
    assert other.counts("discarded") == {"no person": 1}
    notes = ledger.notes("discarded", limit=1000)
    assert len(notes) == NOTES_KEPT  # bounded: the oldest went
    assert notes[0]["detail"]["consent"] == NOTES_KEPT + 4  # newest first
    assert len(notes[0]["detail"]["note"]) == 200
    assert ledger.counts("other name") == {} and ledger.notes("other name") == []
    store.close()


def test_linked_names_the_ids_the_connections_integrations_hold_links_for(tmp_path):
    store = Store(str(tmp_path / "syncd.db"))
    store.save_links("a-sync", [("42", "42", "d", None), ("7", "7", "d", None)])
    store.save_links("b-sync", [("43", "43", "d", None)])
    assert StoreLedger(store, "a", lambda: ["a-sync"]).linked(["42", "43", "44"]) == {"42"}
    assert StoreLedger(store, "b", lambda: ["b-sync"]).linked(["42", "43"]) == {"43"}
    assert StoreLedger(store, "c").linked(["42"]) == set()
    assert Ledger().linked(["42"]) == set()
    store.close()
