"""The daemon's own CPU time per synced record: a full sync with the emulators answering at
once and unlimited APSIS budgets; CPU = utime+stime of the daemon process (/proc/PID/stat)
after minus before the sync, divided by the records processed. Goal: ≤ 100 µs/record.

Also measured: the daemon's CPU while idle (5 s before the sync), so that a cost that runs
whatever the load (a busy loop) is visible next to the per-record cost, and the split of the
sync's CPU by thread (from /proc/PID/task with py-spy naming the threads).

    python -m bench cpu [--contacts 5000] [--no-consents]
"""

from __future__ import annotations

import argparse
import time

from bench.common import (
    apsis_budget,
    base_config,
    cpu_delta,
    daemon_process,
    destination_config,
    emulator_process,
    proc_status,
    run_full_sync,
    sync_rules,
    thread_cpu,
)

GOAL_US = 100.0
IDLE_SECONDS = 5.0


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench cpu")
    parser.add_argument("--contacts", type=int, default=5_000)
    parser.add_argument("--no-consents", action="store_true")
    args = parser.parse_args(argv)
    with emulator_process("tribe", contacts=args.contacts) as (src_cls, src, _, _), \
            emulator_process("apsis", settings=apsis_budget("unlimited")) as (
                dst_cls, dst, _, _):
        rules = sync_rules(src_cls, consents=not args.no_consents)
        config = base_config(src_cls.sandbox_config(src),
                             destination_config(dst_cls, dst, "unlimited"), rules)
        with daemon_process(config) as (proc, client, _):
            time.sleep(1.0)  # let start-up work settle
            idle0, idle_t0 = proc_status(proc.pid)["cpu"], time.monotonic()
            idle_threads0 = thread_cpu(proc.pid)
            time.sleep(IDLE_SECONDS)
            idle1, idle_t1 = proc_status(proc.pid)["cpu"], time.monotonic()
            idle_threads1 = thread_cpu(proc.pid)
            before, threads_before = proc_status(proc.pid), thread_cpu(proc.pid)
            run = run_full_sync(client)
            after, threads_after = proc_status(proc.pid), thread_cpu(proc.pid)
    idle_rate = (idle1 - idle0) / (idle_t1 - idle_t0)
    seconds = run["ended_at"] - run["started_at"]
    cpu = after["cpu"] - before["cpu"]
    processed = max(1, run["processed"])
    per_record = cpu / processed * 1e6
    net = max(0.0, cpu - idle_rate * seconds) / processed * 1e6
    by_thread = cpu_delta(threads_before, threads_after)
    idle_by_thread = cpu_delta(idle_threads0, idle_threads1)
    print(f"  full sync of {args.contacts:,} contacts (unlimited budgets, no latency): "
          f"{run['status']} in {seconds:.1f} s, {run['processed'] / seconds:,.0f} records/s")
    print(f"  daemon CPU {cpu:.2f} s = {per_record:,.0f} µs/record (goal ≤ {GOAL_US:.0f})")
    print(f"  daemon CPU while idle: {idle_rate * 1000:.0f} ms per second ("
          + ", ".join(f"{k} {v / IDLE_SECONDS * 1000:.0f}" for k, v in
                      list(idle_by_thread.items())[:4])
          + f"); net of that: {net:,.0f} µs/record")
    print("  sync CPU by thread: " + ", ".join(f"{k} {v:.2f} s" for k, v in
                                              list(by_thread.items())[:8]))
    return {"cpu_s": cpu, "us_per_record": per_record, "idle_cpu_per_s": idle_rate,
            "net_us_per_record": net, "by_thread": by_thread, "seconds": seconds,
            "table": [("cpu", "daemon CPU per record", f"{per_record:,.0f} µs",
                       f"≤ {GOAL_US:.0f} µs", per_record <= GOAL_US),
                      ("cpu", "daemon CPU while idle", f"{idle_rate * 1000:.0f} ms/s", "-",
                       None)]}


if __name__ == "__main__":
    main()
