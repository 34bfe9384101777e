"""Webhook ingest: how many signed Tribe-style webhooks per second the daemon's receiver
persists (SQLite commit) and acknowledges, and the acknowledgement latency at a fixed rate.

The daemon runs as its own process with a Tribe source and an APSIS destination, both
emulators; the events name persons that do not exist, so applying them costs one cheap
read-back and no APSIS write: only acknowledgements are measured. Bodies are signed as Tribe
signs them (base64 HMAC-SHA512 of the raw body in the configured header) and prepared before
the clock starts; each client thread keeps one keep-alive connection (a pooled session).

1. saturating: ``--threads`` client threads send back to back for ``--seconds``;
2. fixed rate: ``--rate`` deliveries per second for ``--rate-seconds``, each on its schedule
   (latency is counted from the scheduled time, so a client that falls behind shows it).

Both are measured once per ``[daemon] durability``, "full" (``synchronous=FULL``, the default;
webhooks arriving together share one commit) and "normal", and printed side by side.

    python -m bench ingest [--threads 8] [--seconds 5] [--rate 200] [--rate-seconds 10]
                           [--durability full|normal]

Goals, in both modes: ≥ 1,000 acknowledged/s, p99 ≤ 25 ms at 200/s. The load generator shares the two cores
with the daemon and the emulators: its own CPU use is printed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import threading
import time
import uuid

from syncd_tribe.webhooks import sign

from bench.common import (
    base_config,
    cpu_delta,
    daemon_process,
    emulator_process,
    percentile,
    proc_status,
    sync_rules,
    thread_cpu,
)

GOAL_RATE = 1000.0
MODES = ("full", "normal")
GOAL_P99_MS = 25.0


def make_bodies(count: int, secret: str) -> list[tuple[bytes, str]]:
    out = []
    for _ in range(count):
        body = json.dumps({"webhookId": "bench", "payload": {
            "type": "EntityUpdateMutation", "entityType": "Relation.Person",
            "entityId": str(uuid.uuid4())}}, separators=(",", ":")).encode()
        out.append((body, sign(secret, body)))
    return out


class Sender:
    """One keep-alive connection to the receiver."""

    def __init__(self, port: int, header: str):
        self.port, self.header = port, header
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def send(self, body: bytes, signature: str) -> int:
        headers = {"Content-Type": "application/json", self.header: signature}
        for attempt in range(2):
            try:
                self.conn.request("POST", "/webhooks/crm", body=body, headers=headers)
                response = self.conn.getresponse()
                response.read()
                return response.status
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                if attempt:
                    raise
        return 0

    def close(self) -> None:
        self.conn.close()


def saturate(port: int, header: str, secret: str, threads: int, seconds: float) -> dict:
    bodies = make_bodies(6000 * threads, secret)
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    lock = threading.Lock()
    start = threading.Event()
    deadline = [0.0]

    def worker(index: int) -> None:
        sender = Sender(port, header)
        mine = bodies[index::threads]
        local: dict[int, int] = {}
        took: list[float] = []
        start.wait()
        i = 0
        while time.monotonic() < deadline[0] and i < len(mine):
            sent = time.monotonic()
            status = sender.send(*mine[i])
            took.append(time.monotonic() - sent)
            local[status] = local.get(status, 0) + 1
            i += 1
        sender.close()
        with lock:
            latencies.extend(took)
            for k, v in local.items():
                statuses[k] = statuses.get(k, 0) + v

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    cpu0, t0 = os.times(), time.monotonic()
    deadline[0] = t0 + seconds
    start.set()
    for t in pool:
        t.join()
    elapsed = time.monotonic() - t0
    cpu1 = os.times()
    ok = statuses.get(200, 0)
    return {"acked": ok, "seconds": elapsed, "per_s": ok / elapsed, "statuses": statuses,
            "p99_ms": percentile(latencies, 99) * 1000,
            "client_cpu": (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)}


def fixed_rate(port: int, header: str, secret: str, rate: float, seconds: float,
               workers: int = 8) -> dict:
    count = int(rate * seconds)
    bodies = make_bodies(count, secret)
    latencies: list[float] = []
    lag: list[float] = []
    failures = [0]
    lock = threading.Lock()
    t0 = time.monotonic() + 0.5

    def worker(index: int) -> None:
        sender = Sender(port, header)
        for i in range(index, count, workers):
            due = t0 + i / rate
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            sent = time.monotonic()
            status = sender.send(*bodies[i])
            done = time.monotonic()
            with lock:
                latencies.append(done - due)
                lag.append(sent - due)
                if status != 200:
                    failures[0] += 1
        sender.close()

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return {"count": count, "failed": failures[0],
            "p50_ms": percentile(latencies, 50) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000,
            "max_ms": max(latencies) * 1000,
            "p99_send_lag_ms": percentile(lag, 99) * 1000}


def measure(config: dict, args) -> dict:
    """Saturating and fixed-rate figures of one daemon run with ``config``."""
    port = config["receiver"]["port"]
    source = config["connections"]["crm"]
    header, secret = source["signature_header"], source["webhook_secret"]
    with daemon_process(config) as (proc, client, _):
        fixed_rate(port, header, secret, 50, 1.0)  # warm up: connections, SQLite
        cpu0, th0 = proc_status(proc.pid)["cpu"], thread_cpu(proc.pid)
        sat = saturate(port, header, secret, args.threads, args.seconds)
        cpu1, th1 = proc_status(proc.pid)["cpu"], thread_cpu(proc.pid)
        time.sleep(2.0)
        fixed = fixed_rate(port, header, secret, args.rate, args.rate_seconds)
        stats = client.status()["webhooks"]
    return {"saturated": sat, "fixed": fixed, "stats": stats, "cpu": cpu1 - cpu0,
            "threads": list(cpu_delta(th0, th1).items())[:5]}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench ingest")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--rate-seconds", type=float, default=10.0)
    parser.add_argument("--durability", choices=MODES, action="append",
                        help="measure only this [daemon] durability (repeatable; default both)")
    args = parser.parse_args(argv)
    modes = args.durability or list(MODES)
    results = {}
    with emulator_process("tribe") as (src_cls, src, _, _), \
            emulator_process("apsis") as (dst_cls, dst, _, _):
        for mode in modes:
            config = base_config(src_cls.sandbox_config(src), dst_cls.sandbox_config(dst),
                                 sync_rules(src_cls))
            config["daemon"]["durability"] = mode
            results[mode] = r = measure(config, args)
            sat, fixed = r["saturated"], r["fixed"]
            print(f"  durability = \"{mode}\": saturating, {args.threads} client threads for "
                  f"{sat['seconds']:.1f} s: {sat['per_s']:,.0f} webhooks/s acknowledged (200), "
                  f"ack p99 {sat['p99_ms']:.1f} ms (statuses {sat['statuses']}); daemon CPU {r['cpu']:.1f} s, load generator "
                  f"CPU {sat['client_cpu']:.1f} s", flush=True)
            print("    daemon CPU by thread: "
                  + ", ".join(f"{k} {v:.1f} s" for k, v in r["threads"]))
            print(f"    fixed {args.rate:.0f}/s for {args.rate_seconds:.0f} s: p50 "
                  f"{fixed['p50_ms']:.1f} ms, p99 {fixed['p99_ms']:.1f} ms, max "
                  f"{fixed['max_ms']:.1f} ms ({fixed['failed']} not 200; client send lag p99 "
                  f"{fixed['p99_send_lag_ms']:.1f} ms)")
            print(f"    receiver counters: {r['stats']}")
    print(f"\n  {'durability':<12}{'acked/s':>10}{'p99 ms':>9}   "
          f"at {args.rate:.0f}/s:{'p50 ms':>8}{'p99 ms':>9}")
    for mode in modes:
        sat, fixed = results[mode]["saturated"], results[mode]["fixed"]
        quoted = json.dumps(mode)
        print(f"  {quoted:<12}{sat['per_s']:>10,.0f}{sat['p99_ms']:>9.1f}   "
              f"{'':>{len(f'at {args.rate:.0f}/s:')}}{fixed['p50_ms']:>8.1f}"
              f"{fixed['p99_ms']:>9.1f}")
    table = []
    for mode in modes:
        sat, fixed = results[mode]["saturated"], results[mode]["fixed"]
        table += [("ingest", f"{mode}: webhooks acknowledged/s", f"{sat['per_s']:,.0f}/s",
                   f"≥ {GOAL_RATE:,.0f}/s", sat["per_s"] >= GOAL_RATE),
                  ("ingest", f"{mode}: ack p99 at {args.rate:.0f}/s", f"{fixed['p99_ms']:.1f} ms",
                   f"≤ {GOAL_P99_MS:.0f} ms", fixed["p99_ms"] <= GOAL_P99_MS),
                  ("ingest", f"{mode}: ack p50 at {args.rate:.0f}/s", f"{fixed['p50_ms']:.1f} ms",
                   "-", None)]
    return {**results, "table": table}


if __name__ == "__main__":
    main()
