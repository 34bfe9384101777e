"""The memory connector as a ``syncd`` plugin, for the reliability tests that run the daemon as
a process: ``syncd run`` finds it through the entry point that
:func:`reliability_support.spawn_daemon` puts on the daemon's PYTHONPATH (it is never
installed). Its environment:

- ``RELIABILITY_WORLD`` and ``RELIABILITY_RECORDS=N``: that memory world holds N records
  ``p00``, ``p01``, ... before the daemon starts;
- ``RELIABILITY_ENQUEUE_DELAY=SECONDS``: every ``Store.enqueue`` first sleeps that long, so
  that deliveries are in flight when a test stops the daemon.
"""

from __future__ import annotations

import os
import time

from syncd.engine.store import Store
from syncd.plugin import hookimpl
from syncd.records import Record
from syncd.testing import MemoryConnector, world


@hookimpl
def syncd_connectors():
    return [MemoryConnector]


def _seed() -> None:
    w = world(os.environ.get("RELIABILITY_WORLD", "default"))
    for i in range(int(os.environ.get("RELIABILITY_RECORDS") or 0)):
        w.put(Record(f"p{i:02d}", fields={"FirstName": f"n{i}"}, email=f"p{i}@x.nl"))


def _slow_enqueue(delay: float) -> None:
    enqueue = Store.enqueue

    def slow_enqueue(self, items):
        time.sleep(delay)  # the delay under test, not a synchronisation
        return enqueue(self, items)

    Store.enqueue = slow_enqueue


_seed()
if float(os.environ.get("RELIABILITY_ENQUEUE_DELAY") or 0):
    _slow_enqueue(float(os.environ["RELIABILITY_ENQUEUE_DELAY"]))
