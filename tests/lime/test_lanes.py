"""Two lanes per connection (syncd.connectors.lanes): a Tribe and a Lime integration write into
one APSIS account through one APSIS connection; real-time work takes that connection's
real-time lane and never waits behind the bulk lane's work, while both share one rate budget,
one set of Retry-After holds and one token.

Against the emulators, a real in-process daemon (its actors) and a real SQLite file. Ordering
is shown by events, never by sleeps: the APSIS emulator holds chosen requests open (its
``gates``) until the test lets them go, and the real-time write must land while they are
held; a pending import stays pending until the test shortens its delay.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote

import pytest
import tomli_w
from syncd_apsis.connector import ApsisConnector
from syncd_apsis.emulator import ApsisEmulator
from syncd_lime.connector import LimeConnector
from syncd_lime.emulator import LimeEmulator
from syncd_lime.keys import derived_prefix
from syncd_tribe.connector import TribeConnector
from syncd_tribe.emulator import TribeEmulator

from syncd.app.daemon import Daemon
from syncd.app.sandbox import INTEGRATION, _free_port, build_config
from syncd.testing import wait_for

TRIBE, LIME = INTEGRATION, f"{INTEGRATION}-lime"
FIRSTNAME = "com.apsis1.attributes.firstname"


class Gate:
    """Holds APSIS requests that name a profile key of ``keys`` (and pass ``also``) open
    until :meth:`release`; counts those held now and ever."""

    def __init__(self, keys: set[str], also: Callable[[Any], bool] = lambda r: True):
        self.keys, self.also = keys, also
        self.released = threading.Event()
        self.lock = threading.Lock()
        self.holding = self.held = 0
        self.keys_held: dict[str, int] = {}  # key -> requests of it held now

    def __call__(self, request: Any) -> None:
        key = profile_key(request.path)
        if self.released.is_set() or key not in self.keys or not self.also(request):
            return
        with self.lock:
            self.holding += 1
            self.held += 1
            self.keys_held[key] = self.keys_held.get(key, 0) + 1
        try:
            self.released.wait(60)
        finally:
            with self.lock:
                self.holding -= 1
                self.keys_held[key] -= 1

    def holds(self, keys: set[str]) -> bool:
        """Whether a request of one of ``keys`` is held now."""
        with self.lock:
            return any(self.keys_held.get(k) for k in keys)

    def release(self) -> None:
        self.released.set()


def profile_key(path: str) -> str | None:
    parts = path.split("/")
    return unquote(parts[parts.index("profiles") + 1]).lower() \
        if "profiles" in parts[:-1] else None


@pytest.fixture
def two_crms(tmp_path, inprocess_daemons) -> Iterator[Callable[..., tuple]]:
    """``start(apsis_rps=.., tribe_rules={..}, apsis_options={..})`` -> (daemon, tribe, lime,
    apsis): Tribe (300 persons) and Lime (40) into one APSIS connection, a daemon running."""
    made: list[tuple[Any, list]] = []

    def start(apsis_rps: float = 1000.0, tribe_rules: dict | None = None,
              apsis_options: dict | None = None) -> tuple:
        tribe = TribeEmulator(seed=1, delivery_backoff=0.02)
        tribe.seed(300, seed=1)
        lime = LimeEmulator(seed=2, delivery_backoff=0.02)
        lime.seed(40, seed=2)
        apsis = ApsisEmulator(seed=3, threads=32, requests_per_second=apsis_rps,
                              per_key_per_second=50.0)
        emus = [tribe, lime, apsis]
        for emu in emus:
            emu.start()
        options = {**ApsisConnector.sandbox_config(apsis), "requests_per_second": apsis_rps,
                   "concurrency": 4, **(apsis_options or {})}
        rules = {**TribeConnector.sandbox_rules(), "batch_size": 20, "page_size": 50,
                 "response_events": [], **(tribe_rules or {})}
        config = build_config(str(tmp_path / "state"), TribeConnector.sandbox_config(tribe),
                              options, rules, _free_port(), _free_port(),
                              [("lime", LimeConnector.sandbox_config(lime),
                                {**LimeConnector.sandbox_rules(), "response_events": []})])
        path = os.path.join(tmp_path, "syncd.toml")
        with open(path, "wb") as fh:
            tomli_w.dump(config, fh)
        running = inprocess_daemons(path)
        made.append((running, emus))
        daemon = running.start(30).daemon
        assert wait_for(lambda: tribe.webhooks() and lime.webhooks(), 10)
        return daemon, tribe, lime, apsis

    yield start
    for running, emus in made:
        for emu in emus:
            for gate in getattr(emu, "gates", []):
                gate.release()
        running.stop(30)  # before the emulators it talks to
        for emu in emus:
            emu.stop()


def lime_person(lime: LimeEmulator) -> int:
    return next(p for p, o in sorted(lime.store.objects["person"].items())
                if o["customertype"] == "A" and o["email"])


def lime_key(lime: LimeEmulator, pid: int | str) -> str:
    """A Lime person's APSIS key: its connection's key prefix (derived from the URL)."""
    return f"{derived_prefix(lime.url)}{pid}"


def rename_in_lime(lime: LimeEmulator, name: str) -> str:
    pid = lime_person(lime)
    lime.api_session().put(f"{lime.url}/api/v1/limeobject/person/{pid}/",
                           json={"firstname": name}, timeout=10).raise_for_status()
    return lime_key(lime, pid)


def tribe_ids(tribe: TribeEmulator) -> set[str]:
    return {str(p["ID"]).lower() for p in tribe.persons()}


def lanes(daemon: Daemon) -> dict[str, dict]:
    return daemon.control.status()["connections"]["marketing"]["lanes"]


def landed(apsis: ApsisEmulator, key: str, name: str) -> bool:
    return apsis.snapshot().get(key, {}).get(FIRSTNAME) == name


def run_ended(daemon: Daemon, run_id: int) -> dict:
    assert wait_for(lambda: daemon.control.run(run_id)["status"] != "running", 120)
    return daemon.control.run(run_id)


def test_a_webhook_lands_while_a_full_sync_batch_is_held_open(two_crms):
    daemon, tribe, lime, apsis = two_crms()
    assert set(lanes(daemon)) == {"bulk", "realtime"}
    gate = Gate(tribe_ids(tribe))
    apsis.gates.append(gate)
    run_id = daemon.control.start_sync(TRIBE)["run_id"]
    assert wait_for(lambda: gate.holding > 0, 30)  # a batch of Tribe's full sync is in APSIS
    assert lanes(daemon)["bulk"]["call"] == "write_profiles"

    pid = rename_in_lime(lime, "Realtime")
    assert wait_for(lambda: landed(apsis, pid, "Realtime"), 30)
    # it landed while the bulk lane's batch was still held open at APSIS
    assert gate.holding > 0 and not gate.released.is_set()
    assert lanes(daemon)["bulk"]["call"] == "write_profiles"
    assert lanes(daemon)["realtime"]["calls"] > 0

    gate.release()
    run = run_ended(daemon, run_id)
    assert run["status"] == "completed" and run["failed"] == 0, run
    assert apsis.stats()["retry_after_violations"] == 0


def test_a_webhook_lands_while_a_bulk_import_is_pending(two_crms):
    daemon, tribe, lime, apsis = two_crms(
        tribe_rules={"bulk_threshold": 10, "bulk_batch": 50000},
        apsis_options={"import_poll_interval": 0.05})
    apsis.import_delay = 3600.0  # the import stays pending until the test says otherwise
    run_id = daemon.control.start_sync(TRIBE)["run_id"]

    def pending() -> bool:
        with apsis.lock:
            return any(i["status"] == "processing" for i in apsis.imports.values())

    assert wait_for(pending, 60)
    assert lanes(daemon)["bulk"]["call"] == "bulk_write"
    pid = rename_in_lime(lime, "DuringImport")
    assert wait_for(lambda: landed(apsis, pid, "DuringImport"), 30)
    assert pending() and lanes(daemon)["bulk"]["call"] == "bulk_write"  # still polling

    with apsis.lock:
        apsis.import_delay = 0.0
    run = run_ended(daemon, run_id)
    assert run["status"] == "completed" and run["failed"] == 0, run
    assert apsis.imports_created == 1


def test_a_webhook_of_the_same_crm_lands_while_a_dry_run_reads_are_held(two_crms):
    daemon, tribe, lime, apsis = two_crms()
    assert run_ended(daemon, daemon.control.start_sync(TRIBE)["run_id"])["status"] \
        == "completed"
    ids = tribe_ids(tribe)
    synced = sorted(k for k in apsis.snapshot() if k in ids)
    gate = Gate(ids, also=lambda r: r.method == "GET")  # the dry run's profile reads
    apsis.gates.append(gate)
    dry = daemon.control.start_sync(TRIBE, dry_run=True)["run_id"]
    assert wait_for(lambda: gate.holding > 0, 30)
    assert lanes(daemon)["bulk"]["call"] == "read_profiles"

    person = synced[0]
    session = tribe.api_session()
    session.put(f"{tribe.url}/v1/odata/Relation_Person({person})",
                json={"FirstName": "DuringDryRun"}, timeout=10).raise_for_status()
    assert wait_for(lambda: landed(apsis, person, "DuringDryRun"), 30)
    assert gate.holding > 0 and lanes(daemon)["bulk"]["call"] == "read_profiles"

    gate.release()
    assert run_ended(daemon, dry)["status"] == "completed"


def test_both_lanes_busy_never_send_before_a_retry_after_ran_out(two_crms):
    daemon, tribe, lime, apsis = two_crms()
    ids = tribe_ids(tribe)
    held_key = lime_key(lime, lime_person(lime))
    both = Gate(ids | {held_key})
    apsis.gates.append(both)
    run_id = daemon.control.start_sync(TRIBE)["run_id"]
    rename_in_lime(lime, "Held")
    # a Tribe batch and the Lime write are both in flight at APSIS: both lanes are busy
    assert wait_for(lambda: both.holds(ids) and both.holds({held_key}), 30)
    assert lanes(daemon)["bulk"]["call"] == "write_profiles"
    assert lanes(daemon)["realtime"]["call"] == "write_profiles"
    apsis.set_faults(fail_next=[429] * 6, retry_after=1.0)
    both.release()
    rename_in_lime(lime, "AfterHold")
    assert wait_for(lambda: landed(apsis, held_key, "AfterHold"), 60)
    run = run_ended(daemon, run_id)
    assert run["status"] == "completed" and run["failed"] == 0, run
    stats = apsis.stats()
    assert stats["by_status"].get("429", 0) >= 6
    assert stats["retry_after_violations"] == 0
    assert apsis.tokens.issued == 1  # one token for both lanes


def test_both_lanes_share_one_rate_budget(two_crms):
    rate = 40.0
    daemon, tribe, lime, apsis = two_crms(apsis_rps=rate)
    apsis.reset_stats()
    run_id = daemon.control.start_sync(TRIBE)["run_id"]
    people = [str(p) for p, o in sorted(lime.store.objects["person"].items())
              if o["customertype"] == "A" and o["email"]]
    session = lime.api_session()
    for round_ in range(2):  # real-time writes of every Lime profile while the full sync writes
        for pid in people:
            session.put(f"{lime.url}/api/v1/limeobject/person/{pid}/",
                        json={"firstname": f"Busy{round_}"}, timeout=10).raise_for_status()
    assert wait_for(lambda: all(landed(apsis, lime_key(lime, p), "Busy1") for p in people), 90)
    run = run_ended(daemon, run_id)
    assert run["status"] == "completed" and run["failed"] == 0, run
    assert lanes(daemon)["realtime"]["calls"] > 0 and lanes(daemon)["bulk"]["calls"] > 0
    with apsis._stats_lock:
        times = sorted(t for t, _, path, _ in apsis.requests if "/oauth/" not in path)
    # no second holds more than the budget and its burst (half a second's worth)
    worst = max(sum(1 for u in times[i:] if u < t + 1.0) for i, t in enumerate(times))
    assert worst <= rate * 1.5 + 2, worst
    assert apsis.stats()["by_status"].get("429", 0) == 0  # APSIS' own count agrees
