"""Helpers of the chaos tests: the e2e helpers (``tests/e2e/e2e_support.py``) plus what
killing the daemon at random and failing the partners at random need.

The daemon runs as a real ``syncd run`` process (``syncd.testing.DaemonProcess``); the Tribe
and APSIS emulators run in the test process, so their counters and logs are read directly.
"""

from __future__ import annotations

import os
import random
import sqlite3
import sys
import threading
import time
from collections import Counter
from contextlib import closing
from types import SimpleNamespace
from typing import Any

_E2E = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "e2e")
if _E2E not in sys.path:
    sys.path.insert(0, _E2E)

import requests  # noqa: E402
from e2e_support import (  # noqa: E402,F401  (re-exported for the tests)
    APSIS_CLIENT_SECRET,
    NAME,
    TRIBE_CLIENT_SECRET,
    WEBHOOK_SECRET,
    build_config,
    duplicate_profiles,
    free_port,
    integration_status,
    wait_for,
    wait_inbox_empty,
    wait_run,
    wait_webhooks_registered,
    write_config,
)
from syncd_apsis.connector import ApsisConnector  # noqa: E402
from syncd_tribe.connector import TribeConnector  # noqa: E402
from syncd_tribe.emulator_seed import mutate  # noqa: E402
from syncd_tribe.webhooks import events_from  # noqa: E402

from syncd import config as config_mod  # noqa: E402
from syncd.app.sandbox import compare  # noqa: E402
from syncd.connectors import plugins  # noqa: E402
from syncd.engine.store import Store  # noqa: E402
from syncd.testing import DaemonProcess  # noqa: E402


def seed_from_env(default: int) -> int:
    """``CHAOS_SEED`` replays a failing run; the seed is printed by every chaos test."""
    return int(os.environ.get("CHAOS_SEED", default))


# -- the state database, read behind the daemon's back -------------------------------------------


def db_path(state_dir: str) -> str:
    return os.path.join(state_dir, "syncd.db")


def query(state_dir: str, sql: str, args: tuple = ()) -> list[tuple]:
    """Read-only: safe while the daemon runs and after it was killed (nothing is written, no
    checkpoint is made)."""
    with closing(sqlite3.connect(f"file:{db_path(state_dir)}?mode=ro", uri=True,
                                 timeout=5)) as conn:
        return conn.execute(sql, args).fetchall()


def running_full_runs(state_dir: str) -> list[int]:
    return [r[0] for r in query(state_dir, "SELECT id FROM runs WHERE status='running' AND "
                                           "kind='full' AND integration=?", (NAME,))]


def inbox_pending(state_dir: str) -> int:
    return query(state_dir, "SELECT count(*) FROM inbox WHERE status='pending'")[0][0]


def inbox_record_ids(state_dir: str) -> Counter:
    """How often each record id was stored in the inbox (any status)."""
    return Counter(r[0] for r in query(state_dir, "SELECT record_id FROM inbox WHERE "
                                                  "integration=?", (NAME,)))


def acknowledged_record_ids(tribe, accepted=("Relation.Person",
                                             "Relationship.Person.Contact.Standard")) -> Counter:
    """The record ids of every delivery the Tribe emulator saw answered 2xx, parsed the way
    syncd's receiver parses them."""
    import json

    out: Counter = Counter()
    for delivery in tribe.deliveries():
        if not delivery["delivered"]:
            continue
        envelope = json.loads(delivery["body"])
        payloads = envelope["payload"]
        for payload in payloads if isinstance(payloads, list) else [payloads]:
            for event in events_from(payload, envelope.get("webhookId"), accepted):
                out[event.record_id] += 1
    return out


def missing_from_inbox(state_dir: str, tribe) -> list[str]:
    """Acknowledged events that are not in the inbox: each one is a webhook syncd answered
    2xx and then lost."""
    stored = inbox_record_ids(state_dir)
    acked = acknowledged_record_ids(tribe)
    return sorted(f"{rid} acknowledged {n}x, stored {stored.get(rid, 0)}x"
                  for rid, n in acked.items() if stored.get(rid, 0) < n)


# -- the end state -------------------------------------------------------------------------------


def differences(config_path: str, tribe, apsis) -> list[str]:
    """``syncd.app.sandbox.compare`` with consents and tags checked too: APSIS against Tribe's
    current data under the config's rules. Empty when APSIS holds exactly what it should."""
    registry = plugins.load()
    config = config_mod.load(config_path, registry)
    store = Store(db_path(config.daemon.state_dir))
    try:
        view = SimpleNamespace(config=config, store=store)
        return compare(view, TribeConnector, ApsisConnector,
                       TribeConnector.sandbox_config(tribe), apsis.snapshot(),
                       apsis.consents, apsis.tags)
    finally:
        store.close()


def settle(client, timeout: float = 60.0) -> None:
    """Until no run is 'running' and the inbox holds nothing pending, twice in a row (a full
    sync that ends lets held events through; draining them may not start a run, but check)."""
    deadline = time.monotonic() + timeout

    def quiet() -> bool:
        if any(r["status"] == "running" for r in client.runs(NAME, limit=200)):
            return False
        return integration_status(client)["inbox"].get("pending", 0) == 0

    streak = 0
    while streak < 2:
        if time.monotonic() > deadline:
            raise AssertionError(f"not settled after {timeout:.0f} s: runs "
                                 f"{client.runs(NAME, limit=5)}, status "
                                 f"{integration_status(client)}")
        streak = streak + 1 if quiet() else 0
        time.sleep(0.2)


# -- changes in Tribe through its API ------------------------------------------------------------


def use_one_token(tribe) -> None:
    """Make ``mutate`` reuse one bearer token instead of asking for a token per change.

    Tribe's token endpoint has no bearer, so the emulator keys its Retry-After accounting of
    token requests by the client address, which the test shares with syncd: a test that asks
    for tokens under faults could be counted as syncd's violation. With one token fetched
    before the faults go on, every request of the test is accounted to the test's own token."""
    token = tribe.api_session().headers["Authorization"]

    def session() -> requests.Session:
        s = requests.Session()
        s.headers["Authorization"] = token
        return s

    tribe.api_session = session


def matching_now(tribe) -> set[str]:
    """Persons whose contact has CustomerType A (the sandbox condition; a superset of what
    matches, as former contacts are counted too)."""
    return {c["Person"]["ID"] for c in tribe.contacts()
            if c.get("CustomerType") == "A" and c.get("Person")}


class Load(threading.Thread):
    """Changes made in Tribe through its API in bursts, until stopped. Each change fires a
    webhook from the emulator to syncd."""

    def __init__(self, tribe, seed: int, burst=(1, 4), pause=(0.1, 0.4)):
        super().__init__(name="chaos-load", daemon=True)
        self.tribe = tribe
        self.rng = random.Random(seed)
        self.burst = burst
        self.pause = pause
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.made = 0
        self.errors: list[str] = []
        #: Person ids whose contact matched the sandbox conditions at some moment: Tribe's
        #: data changes only through ``change``, and each change is observed right after.
        self.ever_matched: set[str] = matching_now(tribe)

    def change(self, rng: random.Random | None = None) -> str | None:
        """One change; under faults ``mutate`` retries 429/5xx itself, and a change that still
        failed (or hung past its timeout) was not applied by the emulator: try another."""
        rng = rng or self.rng
        for _ in range(5):
            with self.lock:  # one change at a time, each observed before the next
                try:
                    line = mutate(self.tribe, rng)
                except (requests.RequestException, KeyError, ValueError) as exc:
                    last = f"{type(exc).__name__}: {exc}"
                    continue
                finally:
                    self.ever_matched |= matching_now(self.tribe)
                self.made += 1
            return line
        with self.lock:
            self.errors.append(last)
        return None

    def run(self) -> None:
        while not self.stop_flag.is_set():
            for _ in range(self.rng.randint(*self.burst)):
                self.change()
            self.stop_flag.wait(self.rng.uniform(*self.pause))

    def stop(self) -> None:
        self.stop_flag.set()
        self.join(30)


def log_counts(daemon: DaemonProcess, *events: str) -> dict[str, int]:
    counts = Counter(e.get("event") for e in daemon.log_events())
    return {e: counts.get(e, 0) for e in events}


def describe(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())
