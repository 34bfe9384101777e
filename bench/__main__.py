"""`python -m bench NAME [args]` runs one benchmark; `python -m bench all` runs them all."""

import importlib
import sys

BENCHES = ["fullsync", "naive", "memory", "ingest", "latency", "cpu", "ms365", "responses",
           "journal"]
#: what `all` runs: fullsync runs the naive loop side by side itself
ALL = ["fullsync", "memory", "ingest", "latency", "cpu", "ms365"]


def print_table(rows) -> None:
    header = ("bench", "figure", "value", "goal", "met?")
    cells = [header] + [(b, f, v, g, "-" if met is None else ("yes" if met else "NO"))
                        for b, f, v, g, met in rows]
    widths = [max(len(str(row[i])) for row in cells) for i in range(5)]
    print()
    for i, row in enumerate(cells):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main() -> int:
    from syncd.app import logs

    logs.configure("warning", "auto", stream=sys.stderr)  # no plugin.loaded debug lines
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        print("benchmarks:", ", ".join(BENCHES))
        return 0
    name, rest = args[0], args[1:]
    if name == "all":
        import time

        results, rows = {}, []
        for bench in ALL:
            print(f"== {bench}", flush=True)
            started = time.monotonic()
            try:
                results[bench] = importlib.import_module(f"bench.{bench}").main(rest)
                rows.extend(results[bench].get("table", []))
            except Exception as exc:  # one broken bench must not hide the others' figures
                print(f"  {bench} failed: {type(exc).__name__}: {exc}")
                rows.append((bench, "(failed)", f"{type(exc).__name__}", "-", False))
            print(f"  ({time.monotonic() - started:.0f} s)", flush=True)
        print_table(rows)
        return 0 if all(met is not False for *_, met in rows) else 1
    if name not in BENCHES:
        print(f"unknown benchmark {name!r}; choose from {', '.join(BENCHES)} or all")
        return 2
    result = importlib.import_module(f"bench.{name}").main(rest)
    if isinstance(result, dict) and result.get("table"):
        print_table(result["table"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
