"""Change-to-profile latency: a change made in the Tribe emulator through its API (which
fires a signed webhook to the daemon) until the profile is updated in the APSIS emulator.

Setup: Tribe seeded with ``--contacts`` persons, a daemon whose receiver has a public URL (so
it registers its webhooks with Tribe, as in production), a full sync first. Then
``--rate`` changes per second for ``--seconds``: each renames one synced person (``PUT
Relation_Person(id) {"FirstName": ...}``, a new value each time). The APSIS emulator stamps
``modified_at`` on every successful write to a profile; a poller reads the changed profiles
through ``POST /_emulator/profiles`` until each shows its new first name. Latency =
``modified_at`` − the time just before the change was sent (same clock: one machine).
APSIS budgets as documented. Goal: p99 < 1 s.

    python -m bench latency [--contacts 2000] [--rate 50] [--seconds 15] [--latency 0]
"""

from __future__ import annotations

import argparse
import threading
import time

import requests

from bench.common import (
    apsis_budget,
    base_config,
    daemon_process,
    destination_config,
    emulator_process,
    percentile,
    run_full_sync,
    sync_rules,
)

GOAL_P99_S = 1.0
CONTACT = "Relationship_Person_Contact_Standard"


def synced_persons(session: requests.Session, url: str, condition: tuple[str, str]) -> list[str]:
    """Ids of persons whose contact matches the sync condition (so they have a profile)."""
    field, value = condition
    out, skip = [], 0
    while True:
        data = session.get(f"{url}/v1/odata/{CONTACT}", params={
            "$filter": f"{field} eq '{value}'", "$expand": "Person($select=ID)",
            "$select": "ID", "$orderby": "ID", "$top": 500, "$skip": skip}, timeout=30).json()
        values = data.get("value") or []
        out.extend(str(c["Person"]["ID"]).lower() for c in values if c.get("Person"))
        if len(values) < 500:
            return out
        skip += len(values)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench latency")
    parser.add_argument("--contacts", type=int, default=2_000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--latency", type=float, default=0.0,
                        help="seconds every emulator answer is delayed")
    args = parser.parse_args(argv)
    budget = "documented"
    with emulator_process("tribe", contacts=args.contacts, latency=args.latency) as (
            src_cls, src, src_url, _), \
            emulator_process("apsis", latency=args.latency, settings=apsis_budget(budget)) as (
                dst_cls, dst, dst_url, _):
        rules = sync_rules(src_cls)
        config = base_config(src_cls.sandbox_config(src),
                             destination_config(dst_cls, dst, budget), rules, public_url=True)
        with daemon_process(config) as (proc, client, _):
            deadline = time.monotonic() + 60
            while requests.get(f"{src_url}/_emulator/stats", timeout=5).json().get(
                    "webhooks", 0) < 1:
                if time.monotonic() > deadline:
                    raise RuntimeError("the daemon did not register its webhooks")
                time.sleep(0.1)
            run = run_full_sync(client)
            session = src.api_session()
            (field, value), = rules["conditions"].items()
            persons = synced_persons(session, src_url, (field.removeprefix("Contact."), value))
            result = drive(session, src_url, dst_url, persons, args.rate, args.seconds)
            session.close()
    lat = result["latencies"]
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    print(f"  after a full sync ({run['status']}, {run['created']:,} profiles): "
          f"{len(lat):,} of {result['sent']:,} changes seen in APSIS "
          f"({result['missing']} not within the wait) at {args.rate:.0f}/s")
    print(f"  change → profile updated: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
          f"max {max(lat) * 1000:.0f} ms (goal p99 < {GOAL_P99_S:.0f} s); "
          f"change request p99 {percentile(result['put_times'], 99) * 1000:.0f} ms")
    return {"p50_s": p50, "p99_s": p99, "sent": result["sent"], "missing": result["missing"],
            "table": [("latency", f"change→profile p99 at {args.rate:.0f}/s",
                       f"{p99 * 1000:.0f} ms", f"< {GOAL_P99_S * 1000:.0f} ms",
                       p99 < GOAL_P99_S and result["missing"] == 0),
                      ("latency", f"change→profile p50 at {args.rate:.0f}/s",
                       f"{p50 * 1000:.0f} ms", "-", None)]}


def drive(session: requests.Session, src_url: str, dst_url: str, persons: list[str],
          rate: float, seconds: float, wait: float = 15.0, prefix: str = "Bench") -> dict:
    count = int(rate * seconds)
    pending: dict[str, tuple[str, float]] = {}  # person -> (expected first name, sent at)
    lock = threading.Lock()
    latencies: list[float] = []
    put_times: list[float] = []
    done = threading.Event()

    def poll() -> None:
        poller = requests.Session()
        while True:
            with lock:
                keys = list(pending)
            if not keys and done.is_set():
                return
            if keys:
                items = poller.post(f"{dst_url}/_emulator/profiles", json={"keys": keys},
                                    timeout=10).json()["items"]
                with lock:
                    for key, item in zip(keys, items, strict=True):
                        want = pending.get(key)
                        if item is None or want is None:
                            continue
                        if item["attributes"].get("com.apsis1.attributes.firstname") == want[0]:
                            latencies.append(item["modified_at"] - want[1])
                            del pending[key]
            time.sleep(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    t0 = time.monotonic() + 0.2
    base = f"{src_url}/v1/odata/Relation_Person"
    sent = 0
    for i in range(count):
        due = t0 + i / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        person = persons[i % len(persons)]
        with lock:
            if person in pending:  # still in flight from the previous lap: skip it
                continue
        name = f"{prefix}{i}"
        sent_at = time.time()
        with lock:
            pending[person] = (name, sent_at)
        response = session.put(f"{base}({person})", json={"FirstName": name}, timeout=30)
        put_times.append(time.time() - sent_at)
        response.raise_for_status()
        sent += 1
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        with lock:
            if not pending:
                break
        time.sleep(0.1)
    done.set()
    with lock:
        missing = len(pending)
        pending.clear()
    poller.join(5)
    return {"sent": sent, "missing": missing, "latencies": latencies, "put_times": put_times}


if __name__ == "__main__":
    main()
