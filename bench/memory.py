"""Peak RSS (VmHWM) of the daemon for a full sync of a small and a large source, with
unlimited APSIS budgets and no emulator latency so that it finishes; prints both, the ratio
large/small and the absolute MB. Goals (project): ratio ≤ 1.25, ≤ 150 MB.

    python -m bench memory [--small 20000] [--large 100000]

The large size defaults to 100,000, not 200,000: on a 2-core machine shared with other work a
200k sync (plus seeding the Tribe emulator) takes too long for a default run; pass
``--large 200000`` for the full size.
"""

from __future__ import annotations

import argparse

from bench import fullsync

GOAL_RATIO = 1.25
GOAL_MB = 150.0


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench memory")
    parser.add_argument("--small", type=int, default=20_000)
    parser.add_argument("--large", type=int, default=100_000,
                        help="default 100,000 (full size: 200000)")
    parser.add_argument("--no-consents", action="store_true")
    args = parser.parse_args(argv)
    consents = not args.no_consents
    results = {}
    for size in (args.small, args.large):
        r = fullsync.measure(size, 0.0, "unlimited", consents)
        results[size] = r
        print(f"  {size:>9,} contacts: peak RSS {r['peak_rss_mb']:.1f} MB "
              f"({r['status']} in {r['seconds']:.0f} s, {r['records_per_s']:,.0f} records/s, "
              f"{r['failed']} failed)")
    small, large = results[args.small]["peak_rss_mb"], results[args.large]["peak_rss_mb"]
    ratio = large / small
    peak = max(small, large)
    print(f"  peak RSS large/small = {ratio:.2f} (goal ≤ {GOAL_RATIO}); largest "
          f"{peak:.0f} MB (goal ≤ {GOAL_MB:.0f} MB)")
    return {"small": results[args.small], "large": results[args.large], "ratio": ratio,
            "peak_mb": peak,
            "table": [
                ("memory", f"peak RSS {args.large // 1000}k ÷ {args.small // 1000}k",
                 f"{ratio:.2f}", f"≤ {GOAL_RATIO}", ratio <= GOAL_RATIO),
                ("memory", f"peak RSS at {args.large // 1000}k", f"{peak:.0f} MB",
                 f"≤ {GOAL_MB:.0f} MB", peak <= GOAL_MB),
            ]}


if __name__ == "__main__":
    main()
