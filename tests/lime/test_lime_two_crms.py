"""One daemon, two CRMs: a Tribe and a Lime integration into the same APSIS account through
one APSIS connection (one rate budget), each with its own rules and state.

Against the emulators, a real in-process daemon and a real SQLite file: while Tribe's full
sync runs, a change in Lime arrives as a signed webhook and reaches APSIS before that full
sync ends (neither starves the other); both full syncs then run at once; APSIS ends up
holding exactly what each CRM holds under its own rules; no request left before a
Retry-After ran out (APSIS answers some requests 429; counted with no grace at both ends, by
the 429s each request names as known to its sender: see ``tests/apsis/
test_apsis_retry_after.py``); an unsubscribe of a Lime profile is
written back to Lime as approved = false and never offered to Tribe; a consent saved without
a person is discarded, counted in the status, and changes nothing.
"""

from __future__ import annotations

import json
import os

import pytest
import requests
import tomli_w
from syncd_apsis.connector import ApsisConnector
from syncd_apsis.emulator import ApsisEmulator
from syncd_lime.connector import LimeConnector
from syncd_lime.emulator import LimeEmulator
from syncd_tribe.connector import TribeConnector
from syncd_tribe.emulator import TribeEmulator

from syncd.app.sandbox import INTEGRATION, _free_port, build_config, compare
from syncd.testing import wait_for
from syncd.testing.holds import SentLog

TRIBE, LIME = INTEGRATION, f"{INTEGRATION}-lime"
TOPIC = "com.apsis1.topics.newsletter"


@pytest.fixture
def world(tmp_path, inprocess_daemons):
    tribe = TribeEmulator(seed=1, delivery_backoff=0.02)
    tribe.seed(400, seed=1)
    lime = LimeEmulator(seed=2, delivery_backoff=0.02)
    lime.seed(40, seed=2)
    apsis = ApsisEmulator(seed=3, requests_per_second=60.0)
    for emu in (tribe, lime, apsis):
        emu.start()
    apsis.set_faults(throttle_rate=0.03, retry_after=0.4)  # some 429s: never sent before
    apsis_options = {**ApsisConnector.sandbox_config(apsis), "requests_per_second": 60.0}
    tribe_rules = {**TribeConnector.sandbox_rules(), "batch_size": 20}
    config = build_config(str(tmp_path / "state"), TribeConnector.sandbox_config(tribe),
                          apsis_options, tribe_rules, _free_port(), _free_port(),
                          [("lime", LimeConnector.sandbox_config(lime),
                            LimeConnector.sandbox_rules())])
    path = os.path.join(tmp_path, "syncd.toml")
    with open(path, "wb") as fh:
        tomli_w.dump(config, fh)
    running = inprocess_daemons(path)
    try:
        daemon = running.start(30).daemon
        assert wait_for(lambda: tribe.webhooks() and lime.webhooks(), 10)
        yield daemon, tribe, lime, apsis
    finally:
        running.stop(30)  # before the emulators it talks to
        for emu in (tribe, lime, apsis):
            emu.stop()


def lime_person(lime: LimeEmulator) -> int:
    return next(p for p, o in sorted(lime.store.objects["person"].items())
                if o["customertype"] == "A" and o["email"])


def test_two_crms_into_one_apsis_account(world, monkeypatch):
    daemon, tribe, lime, apsis = world
    sent = SentLog(monkeypatch, apsis.url)
    # 1. Tribe's full sync runs; a Lime change arrives meanwhile and is not starved
    tribe_run = daemon.control.start_sync(TRIBE)["run_id"]
    pid = lime_person(lime)
    # a Lime person's profile key: the connection's key prefix (derived from its base_url)
    prefix = LimeConnector.key_space("crm-lime", daemon.config.connections["crm-lime"].options)[0]
    assert prefix and not prefix.isdigit()
    lime.api_session().put(f"{lime.url}/api/v1/limeobject/person/{pid}/",
                           json={"firstname": "Realtime"}, timeout=10).raise_for_status()
    firstname = "com.apsis1.attributes.firstname"
    assert wait_for(lambda: apsis.snapshot().get(f"{prefix}{pid}", {}).get(firstname) == "Realtime",
                    60)
    assert daemon.progress[TRIBE].state == "full_sync", \
        "the Lime event waited for Tribe's whole full sync"
    # 2. Lime's full sync joins; both complete, each with its own run
    lime_run = daemon.control.start_sync(LIME)["run_id"]
    assert wait_for(lambda: all(daemon.control.run(r)["status"] != "running"
                                for r in (tribe_run, lime_run)), 180)
    runs = {i: daemon.control.run(r) for i, r in ((TRIBE, tribe_run), (LIME, lime_run))}
    assert all(r["status"] == "completed" and r["failed"] == 0 for r in runs.values()), runs
    assert runs[TRIBE]["integration"] == TRIBE and runs[LIME]["integration"] == LIME
    snapshot = apsis.snapshot()
    tribe_keys = set(daemon.store.links(TRIBE, list(snapshot)))
    lime_keys = set(daemon.store.links(LIME, list(snapshot)))
    assert tribe_keys and lime_keys and not tribe_keys & lime_keys
    assert tribe_keys | lime_keys == set(snapshot)
    for name, cls, others in ((TRIBE, TribeConnector, lime_keys),
                              (LIME, LimeConnector, tribe_keys)):
        options = daemon.config.connections[daemon.config.integrations[name].source].options
        assert compare(daemon, cls, ApsisConnector, options, snapshot, apsis.consents,
                       apsis.tags, integration_name=name, others=others) == [], name
    stats = apsis.stats()
    assert stats["by_status"].get("429", 0) > 0  # the budget was contended
    assert sent.holds and any(k != "-" for k in sent.held_by)  # 429s came back, waited out
    assert None not in sent.held_by  # each request said what it knew: judged exactly
    assert sent.early == [], sent.early[:5]
    assert stats["retry_after_violations"] == 0, list(apsis.retry_after_log)[:5]

    # 3. an unsubscribe of a Lime profile: approved = false in Lime, never offered to Tribe
    types = {t["title"]: t["_id"] for t in lime.store.objects["consenttype"].values()}
    opted = next(k for k in sorted(lime_keys) if any(
        c["approved"] and c["consenttype"] == types["Newsletter"]
        for c in lime.consents_of(int(k.removeprefix(prefix)))))
    consents_before = len(lime.store.objects["consent"])
    apsis.unsubscribe(opted, TOPIC)

    def written_back() -> bool:
        for name in (TRIBE, LIME):
            daemon.supervisor.coordinator(name).run_job("consent_changes", {}).get(timeout=60)
        newest = max((c for c in lime.consents_of(int(opted.removeprefix(prefix)))
                      if c["consenttype"] == types["Newsletter"]), key=lambda c: c["date"])
        return newest["approved"] is False

    assert wait_for(written_back, 60, interval=0.2)
    assert len(lime.store.objects["consent"]) == consents_before  # none deleted or added
    assert daemon.store.unwritten_optouts(TRIBE) == []
    assert not daemon.store.optouts(TRIBE, [opted])

    # 4. a forged delivery to the receiver: refused with 401, nothing queued
    body = json.dumps({"event": "person.update", "body": {"id": pid, "limetype": "person",
                                                          "values": {}}}).encode()
    lime.wait_deliveries(10)  # the write-back's own consent.update has arrived
    assert wait_for(lambda: daemon.store.pending_count(LIME) == 0, 30)
    inbox = daemon.store.inbox_counts()
    forged = requests.post(f"{daemon.receiver.url}/webhooks/crm-lime", data=body, timeout=10,
                           headers={"X-Lime-Signature": "sha256=" + "0" * 64})
    assert forged.status_code == 401
    assert daemon.store.inbox_counts() == inbox

    # 5. a consent saved without a person: discarded, counted, nothing else changes
    before = apsis.snapshot()
    lime.create("consent", {"approved": True, "consenttype": types["Newsletter"]})
    lime.wait_deliveries(10)
    assert wait_for(lambda: daemon.store.pending_count(LIME) == 0, 30)
    daemon.supervisor.coordinator(LIME).ping().get(timeout=30)
    status = daemon.control.status()
    discarded = status["connections"]["crm-lime"]["stats"]["discarded"]
    assert discarded == {"consent without a person": 1}
    assert apsis.snapshot() == before
    assert not daemon.store.dead_letters(LIME)
