"""A connection's ledger: what a connector must remember across restarts about its own work.

The daemon gives each connector one (:attr:`syncd.connectors.connector.Connector.ledger`)
before ``start``, kept in the state store (:mod:`syncd.engine.ledgerstore`); tools and
tests that give none get this module's :class:`Ledger`, kept in memory. It holds:

- **counts** by name and reason (``count("discarded", "consent without a person")``): e.g.
  the messages a connector received and discarded by its rules. ``syncd status`` shows a
  connector's ``stats()["discarded"]`` and ``/metrics`` the ``"discarded"`` counts of every
  connection (``syncd_connection_discarded_messages_total``), read from the store, so a
  restart loses nothing;
- **notes**: the last :data:`NOTES_KEPT` occurrences per name, each with its time, reason
  and a few scalar details (ids, an event name; never a record's values or a secret), so
  that an operator can see which messages they were;
- **linked**: which of some source ids syncd holds a link for, in the integrations reading
  from this connection (e.g. to keep the destination key a record was first written with).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from syncd.records import Scalar

#: Notes kept per connection and name (the oldest go first).
NOTES_KEPT = 100
#: Longest text kept of a reason or a detail.
TEXT_KEPT = 200


def clean(detail: Mapping[str, Any]) -> dict[str, Scalar]:
    """The details a note keeps: scalars, texts cut to :data:`TEXT_KEPT` characters."""
    out: dict[str, Scalar] = {}
    for key, value in detail.items():
        if value is None or isinstance(value, bool | int | float):
            out[str(key)[:TEXT_KEPT]] = value
        else:
            out[str(key)[:TEXT_KEPT]] = str(value)[:TEXT_KEPT]
    return out


class Ledger:
    """A connection's ledger in memory (lost with the process): the base and the stand-in
    where no store is given. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, int]] = {}
        self._notes: dict[str, deque[dict[str, Any]]] = {}

    def count(self, name: str, reason: str, **detail: Any) -> None:
        """Count one ``name`` for ``reason`` and note it with ``detail``."""
        reason = reason[:TEXT_KEPT]
        note = {"at": time.time(), "reason": reason, "detail": clean(detail)}
        with self._lock:
            by_reason = self._counts.setdefault(name, {})
            by_reason[reason] = by_reason.get(reason, 0) + 1
            self._notes.setdefault(name, deque(maxlen=NOTES_KEPT)).append(note)

    def counts(self, name: str) -> dict[str, int]:
        """``reason -> count`` of ``name``, since the ledger began."""
        with self._lock:
            return dict(self._counts.get(name, {}))

    def notes(self, name: str, limit: int = 20) -> list[dict[str, Any]]:
        """The last ``limit`` notes of ``name``, newest first: ``{"at", "reason", "detail"}``."""
        with self._lock:
            kept = list(self._notes.get(name, ()))
        return kept[::-1][:max(0, limit)]

    def linked(self, source_ids: Iterable[str]) -> set[str]:
        """Those of ``source_ids`` an integration reading from this connection holds a link
        for (none in memory: nothing was ever written)."""
        return set()
