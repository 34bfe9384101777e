"""Full sync: N contacts from the Tribe emulator into the APSIS emulator, each in its own
process, through a real daemon. Prints records per second and the daemon's peak RSS.

    python -m bench fullsync [--contacts 20000] [--latency 0]
"""

from __future__ import annotations

import argparse

from bench.common import base_config, daemon_process, emulator_process, proc_status, \
    run_full_sync


def measure(contacts: int, latency: float = 0.0, page_size: int = 500) -> dict:
    with emulator_process("tribe", contacts=contacts, latency=latency) as (src_cls, src, _, _), \
            emulator_process("apsis", latency=latency) as (dst_cls, dst, _, _):
        rules = dict(src_cls.sandbox_rules())
        rules["page_size"] = page_size
        config = base_config(src_cls.sandbox_config(src), dst_cls.sandbox_config(dst), rules)
        with daemon_process(config) as (proc, client, _):
            before = proc_status(proc.pid)
            run = run_full_sync(client)
            after = proc_status(proc.pid)
    seconds = run["ended_at"] - run["started_at"]
    return {
        "contacts": contacts,
        "status": run["status"],
        "seconds": seconds,
        "records_per_s": run["processed"] / seconds if seconds else 0.0,
        "created": run["created"],
        "failed": run["failed"],
        "peak_rss_mb": after["VmHWM"] / 1024,
        "cpu_s": after["cpu"] - before["cpu"],
        "cpu_us_per_record": (after["cpu"] - before["cpu"]) / max(1, run["processed"]) * 1e6,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench fullsync")
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args(argv)
    result = measure(args.contacts, args.latency)
    print(f"full sync of {result['contacts']:,} contacts: {result['status']} in "
          f"{result['seconds']:.1f} s, {result['records_per_s']:,.0f} records/s, "
          f"peak RSS {result['peak_rss_mb']:.0f} MB, daemon CPU "
          f"{result['cpu_us_per_record']:.0f} µs/record, failed {result['failed']}")
    return result


if __name__ == "__main__":
    main()
