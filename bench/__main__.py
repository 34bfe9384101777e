"""`python -m bench NAME [args]` runs one benchmark; `python -m bench all` runs them all."""

import importlib
import sys

BENCHES = ["fullsync"]


def main() -> int:
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        print("benchmarks:", ", ".join(BENCHES))
        return 0
    name, rest = args[0], args[1:]
    if name == "all":
        results = {}
        for bench in BENCHES:
            print(f"== {bench}")
            results[bench] = importlib.import_module(f"bench.{bench}").main(rest)
        return 0
    if name not in BENCHES:
        print(f"unknown benchmark {name!r}; choose from {', '.join(BENCHES)} or all")
        return 2
    importlib.import_module(f"bench.{name}").main(rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
