"""Response data: events written per second while a large backlog drains (a week offline),
and real-time contact latency (p99) during the drain, side by side with no backlog.

Setup: Tribe and APSIS emulators in their own processes (APSIS budgets as documented), the
daemon (``syncd run``) with the Tribe sandbox rules and every e-mail event type in
``response_events``, a full sync first. Then:

1. *no backlog*: ``--rate`` changes per second for ``--seconds`` in Tribe (each renames a
   synced person through the API; a webhook reaches the daemon, which reads the person back
   and writes the profile); latency = change sent -> profile written in APSIS (as ``bench
   latency`` measures it);
2. *backlog*: ``--events`` e-mail events of the synced profiles are put into the APSIS
   emulator (``POST /_emulator/events``), a response-data run is started (``syncd responses
   run``); once it has read the export it writes the events to Tribe as activities; the same
   changes are made meanwhile. Events written per second = activities written in the window
   / its length (the run keeps draining afterwards: the drain time at that rate is shown).

``--pace`` sets ``responses_rate`` (0: unpaced, the worst case for real time).

    python -m bench responses [--contacts 1000] [--events 100000] [--rate 20] [--seconds 15]
                              [--pace 0] [--batch 20]
"""

from __future__ import annotations

import argparse
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
from bench.latency import drive, synced_persons

TYPES = ["email_sent", "email_delivered", "email_bounced", "email_opened", "email_clicked",
         "email_unsubscribed"]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench responses")
    parser.add_argument("--contacts", type=int, default=1_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=20.0, help="real-time changes per second")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--pace", type=float, default=0.0, help="responses_rate (0: unpaced)")
    parser.add_argument("--batch", type=int, default=20, help="responses_batch")
    args = parser.parse_args(argv)
    budget = "documented"
    with emulator_process("tribe", contacts=args.contacts) as (src_cls, src, src_url, _), \
            emulator_process("apsis", settings=apsis_budget(budget)) as (
                dst_cls, dst, dst_url, _):
        rules = sync_rules(src_cls)
        rules.update({"response_events": TYPES, "responses_rate": args.pace,
                      "responses_batch": args.batch})
        destination = destination_config(dst_cls, dst, budget)
        destination["export_poll_interval"] = 0.2
        config = base_config(src_cls.sandbox_config(src), destination, rules, public_url=True)
        with daemon_process(config) as (proc, client, _):
            deadline = time.monotonic() + 60
            while requests.get(f"{src_url}/_emulator/stats", timeout=5).json().get(
                    "webhooks", 0) < 1:
                if time.monotonic() > deadline:
                    raise RuntimeError("the daemon did not register its webhooks")
                time.sleep(0.1)
            run_full_sync(client)
            session = src.api_session()
            (field, value), = rules["conditions"].items()
            persons = synced_persons(session, src_url, (field.removeprefix("Contact."), value))
            base = drive(session, src_url, dst_url, persons, args.rate, args.seconds)
            recorded = requests.post(f"{dst_url}/_emulator/events", json={
                "crm_ids": persons, "count": args.events,
                "types": ["SENT", "DELIVERED", "OPENED", "CLICKED", "BOUNCED"]},
                timeout=300).json()["recorded"]
            started = time.monotonic()
            run_id = client.run_responses("bench")["run_id"]
            while (client.run(run_id).get("total") or 0) == 0:  # reading the export
                if client.run(run_id)["status"] != "running":
                    raise RuntimeError(f"the run ended: {client.run(run_id)}")
                time.sleep(0.1)
            read_s = time.monotonic() - started
            t0, done0 = time.monotonic(), client.run(run_id)["processed"]
            loaded = drive(session, src_url, dst_url, persons, args.rate, args.seconds,
                           prefix="Drain")
            window = time.monotonic() - t0
            run = client.run(run_id)
            written = run["processed"] - done0
            session.close()
    per_s = written / window
    total = run.get("total") or recorded
    lat0, lat1 = base["latencies"], loaded["latencies"]
    p99_0, p99_1 = percentile(lat0, 99), percentile(lat1, 99)
    print(f"  backlog: {recorded:,} events exported and read in {read_s:.1f} s; "
          f"{written:,} written to Tribe in {window:.1f} s = {per_s:,.0f} events/s "
          f"(pace {args.pace or 'off'}, batch {args.batch}); the {total:,} would drain in "
          f"{total / max(per_s, 1e-9) / 60:.1f} min")
    print(f"  real-time change -> profile, {args.rate:.0f}/s: no backlog p50 "
          f"{percentile(lat0, 50) * 1000:.0f} ms, p99 {p99_0 * 1000:.0f} ms "
          f"({base['missing']} missing); while draining p50 "
          f"{percentile(lat1, 50) * 1000:.0f} ms, p99 {p99_1 * 1000:.0f} ms "
          f"({loaded['missing']} missing)")
    return {"events_per_s": per_s, "p99_idle_s": p99_0, "p99_draining_s": p99_1,
            "table": [("responses", f"events written/s ({recorded:,} backlog)",
                       f"{per_s:,.0f}/s", "-", None),
                      ("responses", "real-time p99, no backlog", f"{p99_0 * 1000:.0f} ms",
                       "< 1000 ms", p99_0 < 1.0 and base["missing"] == 0),
                      ("responses", "real-time p99, draining", f"{p99_1 * 1000:.0f} ms",
                       "< 1000 ms", p99_1 < 1.0 and loaded["missing"] == 0)]}


if __name__ == "__main__":
    main()
