"""Run syncd's daemon as its own process with the memory connector registered, as
`syncd run -c FILE` would (real signal handlers, real logging set-up), for the tests that need
a process: SIGTERM, exit codes, the RSS of the daemon alone.

    python launch_daemon.py CONFIG READY_FILE [RECORDS]

The memory world named in the config's ``[connections.crm]`` gets RECORDS records
``p00``, ``p01``, ... before the daemon starts. Once the daemon is ready, READY_FILE receives
``{"pid": ..., "receiver": PORT, "admin": PORT}`` (written to a temporary name, then renamed).
The exit code is the daemon's. With ``SYNCD_TEST_ENQUEUE_DELAY=SECONDS`` every
``Store.enqueue`` first sleeps that long, so that deliveries are in flight when a test stops the
daemon.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import tomllib


def main(argv: list[str]) -> int:
    config_path, ready_file = argv[1], argv[2]
    records = int(argv[3]) if len(argv) > 3 else 0

    from syncd.app.daemon import Daemon
    from syncd.engine.records import Record
    from syncd.testing import memory_registry, world

    with open(config_path, "rb") as fh:
        name = tomllib.load(fh)["connections"]["crm"].get("world", "default")
    w = world(name)
    for i in range(records):
        w.put(Record(f"p{i:02d}", fields={"FirstName": f"n{i}"}, email=f"p{i}@x.nl"))

    delay = float(os.environ.get("SYNCD_TEST_ENQUEUE_DELAY") or 0)
    if delay:
        import time

        from syncd.engine.store import Store

        enqueue = Store.enqueue

        def slow_enqueue(self, items):
            time.sleep(delay)
            return enqueue(self, items)

        Store.enqueue = slow_enqueue

    daemon = Daemon(config_path, registry=memory_registry())

    def announce() -> None:
        if not daemon.started.wait(60) or daemon.receiver is None:
            return
        tmp = ready_file + ".tmp"
        with open(tmp, "w") as fh:
            json.dump({"pid": os.getpid(), "receiver": daemon.receiver.port,
                       "admin": daemon.admin.port}, fh)
        os.replace(tmp, ready_file)

    threading.Thread(target=announce, daemon=True, name="announce").start()
    return daemon.serve()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
