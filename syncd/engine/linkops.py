"""Operating the links a connector runs itself (e.g. a per-user two-way link between a CRM
and an address book): the same runs, guard and fail-fast as integrations, through the
core's store, without the core knowing the connector.

The daemon gives every connector ``connector.links``, a :class:`Links` for its connection
(``syncd.plugin.Links``), before ``start()``. A link is named ``CONNECTION:KEY`` (the key is
the connector's, e.g. a user's e-mail address) and then works with the core's commands:

- each round of a link is a run (:meth:`Links.run` → :class:`LinkRun`), with counts per
  side and outcome, so ``syncd runs LINK``, ``syncd runs show RUN`` and ``/metrics`` show it;
  a *quiet* round (not an initial sync; it completed, read no change on either side, wrote,
  failed and held nothing: a poll every ``poll_interval`` that found nothing) is not kept as
  a run: the link keeps, in memory, when its last quiet round ended and how many passed since
  its last kept run (``syncd status``), and ``/metrics`` counts it as a run with status
  ``quiet`` (``syncd_runs``), so liveness stays visible;
- the guard (:func:`syncd.engine.twoway.over_share` decides): :meth:`Links.hold` keeps a
  round that would change too much, ``syncd status`` shows it, ``syncd confirm LINK``
  releases it (the connector's ``on_release`` is called with ``"confirm"``);
- ``syncd explain LINK RECORD``: the HTTP calls a round makes inside
  :func:`syncd.plugin.for_records` (:meth:`LinkRun.recording` keeps them) are journaled
  with each write's answer (:meth:`LinkRun.answered`), or as a comparison that changed
  nothing, under the link's name;
- fail-fast: :meth:`Links.stop` stops one link with one error (the connector uses
  :class:`syncd.engine.failfast.FailFast`), shown by ``syncd status``;
  ``syncd sync start LINK`` starts it again (``on_release`` with ``"start"``).

The hold lives in the store's guard tables (it outlives a restart); a stop lives in memory
(a restart starts the link again, as for an integration's paused real-time path).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import structlog

from syncd import metrics
from syncd.connectors import calls as C
from syncd.engine.explain import Journal
from syncd.engine.runstore import COUNTERS
from syncd.engine.store import Store
from syncd.records import WriteResult

log = structlog.get_logger("syncd.links")

#: The guard's window for links: a hold is released only by a confirm, never by time.
HOLD_WINDOW = 10 * 365 * 86400.0


class LinkRun:
    """One round of a link, a row of ``syncd runs``: count what it did per side."""

    def __init__(self, store: Store, link: str, kind: str,
                 registry: LinkRegistry | None = None):
        self.store, self.link, self.kind, self.registry = store, link, kind, registry
        self.started_at = time.time()
        self.id = store.start_run(link, kind)
        self.counts: Counter[str] = Counter()
        self.errors: list[tuple[str, str, bool]] = []
        self.status: str | None = None
        #: the buffer of the calls made for records in this run (:meth:`recording`)
        self.owner = f"link:{link}:{self.id}"
        self._journal: Journal | None = None
        self._answers: list[tuple[str, str, WriteResult]] = []

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        """Keep the calls made inside :func:`syncd.plugin.for_records` for the journal."""
        with C.recording(self.owner):
            yield

    def journal(self) -> Journal:
        if self._journal is None:
            self._journal = Journal(self.store, self.link)
        return self._journal

    def answered(self, record_id: str, request: str, result: WriteResult) -> None:
        """Journal a write's answer for ``syncd explain``, with the calls made for it (kept
        when the run finishes, in one transaction)."""
        self._answers.append((record_id, request, result))

    def _journaled(self) -> None:
        """The answers, with their calls; records whose calls no answer took are journaled
        as compared (nothing written)."""
        answered = {a[0] for a in self._answers}
        waiting = [rid for rid in C.buffer(self.owner).waiting() if rid not in answered]
        rows = self._answers + [(rid, "compare", WriteResult(rid, "unchanged"))
                                for rid in waiting]
        if rows:
            self.journal().answered(rows, via=self.owner)
        C.forget(self.owner)

    def count(self, side: str, outcome: str, n: int = 1) -> None:
        """``outcome`` is one of created, updated, unchanged, skipped, failed."""
        if outcome not in COUNTERS:
            raise ValueError(f"unknown outcome {outcome!r}")
        self.counts[f"{side}.{outcome}"] += n

    def error(self, key: str, reason: str, retryable: bool = False) -> None:
        self.errors.append((key, reason, retryable))

    def quiet(self) -> bool:
        """A completed round (not an initial sync) that read no change on either side and
        wrote, failed and held nothing: only records compared unchanged, no call made for a
        record, no answer."""
        return (self.status == "completed" and self.kind != "initial_sync"
                and not self.errors and not self._answers
                and all(k.endswith(".unchanged") for k, n in self.counts.items() if n)
                and not C.buffer(self.owner).waiting())

    def finish(self, status: str = "completed", error: str | None = None) -> None:
        if self.status is not None:
            return
        self.status = status
        if self.quiet():  # not kept: counted in /metrics and in the link's status
            C.forget(self.owner)
            self.store.drop_run(self.id)
            now = time.time()
            metrics.run_finished({"integration": self.link, "kind": self.kind,
                                  "started_at": self.started_at}, "quiet", now)
            if self.registry is not None:
                self.registry.quiet(self.link, now)
            return
        if self.registry is not None:
            self.registry.kept(self.link)
        try:
            self._journaled()
        except Exception as exc:  # the journal explains; it never stops a link
            log.warning("link.journal_failed", link=self.link, error=str(exc))
        totals = Counter[str]()
        for name, n in self.counts.items():
            totals[name.split(".", 1)[1]] += n
        totals["processed"] = sum(n for k, n in totals.items() if k != "processed")
        self.store.progress_run(self.id, dict(totals), errors=self.errors)
        self.store.count_run(self.id, dict(self.counts))
        self.store.finish_run(self.id, status, error)

    def __enter__(self) -> LinkRun:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if exc is not None:
            self.finish("failed", f"{type(exc).__name__}: {exc}")
        else:
            self.finish()


class LinkRegistry:
    """Every link of the daemon's connectors (the daemon holds one): what ``syncd status``,
    ``syncd runs``, ``syncd confirm`` and ``syncd sync start`` reach by a link's name."""

    def __init__(self, store: Store):
        self.store = store
        self.lock = threading.Lock()
        self.releases: dict[str, Callable[[str], None]] = {}
        self.stopped: dict[str, str] = {}
        #: per link: when its last quiet round ended, how many since its last kept run
        self.quiet_rounds: dict[str, tuple[float, int]] = {}

    def quiet(self, name: str, at: float) -> None:
        with self.lock:
            self.quiet_rounds[name] = (at, self.quiet_rounds.get(name, (0.0, 0))[1] + 1)

    def kept(self, name: str) -> None:
        """A round of the link is kept as a run: its quiet rounds count from 0 again."""
        with self.lock:
            last = self.quiet_rounds.get(name)
            if last is not None:
                self.quiet_rounds[name] = (last[0], 0)

    def __contains__(self, name: object) -> bool:
        with self.lock:
            return name in self.releases

    def names(self) -> list[str]:
        with self.lock:
            return sorted(self.releases)

    def release(self, name: str, action: str) -> dict[str, Any]:
        """A person's ``confirm`` (the hold ends) or ``start`` (a stop ends): the link's
        connector is told and runs a whole round again."""
        with self.lock:
            callback = self.releases.get(name)
            if callback is None:
                raise KeyError(f"no link named {name!r}")
            stopped = self.stopped.pop(name, None) if action == "start" else None
        held = self.store.guard_confirm(name, release=False) if action == "confirm" else []
        log.warning("link.released", link=name, action=action, held=len(held),
                    stopped=stopped)
        callback(action)
        return {"link": name, "action": action, "held": len(held),
                "was_stopped": stopped, "records": len(held), "write_backs": 0}

    def status(self) -> dict[str, Any]:
        out = {}
        for name in self.names():
            state = self.store.guard_state(name, HOLD_WINDOW)
            latest = self.store.runs(name, 1)
            with self.lock:
                quiet_at, quiet = self.quiet_rounds.get(name, (None, 0))
            out[name] = {"last_run": latest[0] if latest else None,
                         "last_quiet": quiet_at, "quiet_rounds": quiet,
                         "held_since": state["held_since"], "held": state["reason"],
                         "stopped": self.stopped.get(name),
                         "confirm": f"syncd confirm {name}" if state["held_since"] else None,
                         "start": f"syncd sync start {name}" if name in self.stopped
                         else None}
        return out


class Links:
    """What a connector gets as ``connector.links``: its links' runs, guard and stops."""

    def __init__(self, registry: LinkRegistry, connection: str):
        self.registry, self.connection = registry, connection

    def name(self, key: str) -> str:
        return f"{self.connection}:{key}"

    def register(self, key: str, on_release: Callable[[str], None]) -> str:
        """Make the link known (to status, runs, confirm); returns its name.
        ``on_release(action)`` is called from the admin thread: keep it short."""
        name = self.name(key)
        with self.registry.lock:
            self.registry.releases[name] = on_release
        return name

    def run(self, key: str, kind: str) -> LinkRun:
        return LinkRun(self.registry.store, self.name(key), kind, self.registry)

    def held(self, key: str) -> str | None:
        """Why the guard holds the link (None: it does not)."""
        state = self.registry.store.guard_state(self.name(key), HOLD_WINDOW)
        return state["reason"] if state["held_since"] else None

    def hold(self, key: str, reason: str, items: list[tuple[str, str]]) -> None:
        """Hold the link for a person: ``items`` are ``(side, record)`` not written."""
        self.registry.store.guard_admit(self.name(key), [], items or [("round", "-")],
                                        reason, HOLD_WINDOW)
        log.error("link.held", link=self.name(key), reason=reason,
                  confirm=f"syncd confirm {self.name(key)}")

    def stop(self, key: str, error: str) -> None:
        """Stop the link (fail-fast): ``error`` names the status, endpoint and fix."""
        with self.registry.lock:
            self.registry.stopped[self.name(key)] = error
        log.error("link.stopped", link=self.name(key), error=error,
                  resume=f"syncd sync start {self.name(key)} or a restart")

    def stopped(self, key: str) -> str | None:
        with self.registry.lock:
            return self.registry.stopped.get(self.name(key))


class NoLinks(Links):
    """``connector.links`` outside a daemon (tests, CLI): runs and holds go nowhere."""

    def __init__(self, connection: str = ""):
        self.connection = connection
        self._stopped: dict[str, str] = {}

    def register(self, key: str, on_release: Callable[[str], None]) -> str:
        return self.name(key)

    def run(self, key: str, kind: str) -> LinkRun:
        return _NullRun()  # type: ignore[return-value]

    def held(self, key: str) -> str | None:
        return None

    def hold(self, key: str, reason: str, items: list[tuple[str, str]]) -> None:
        log.error("link.held", link=self.name(key), reason=reason)

    def stop(self, key: str, error: str) -> None:
        self._stopped[self.name(key)] = error

    def stopped(self, key: str) -> str | None:
        return self._stopped.get(self.name(key))


class _NullRun:
    id = 0

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        yield

    def answered(self, record_id: str, request: str, result: WriteResult) -> None: ...

    def count(self, side: str, outcome: str, n: int = 1) -> None: ...
    def error(self, key: str, reason: str, retryable: bool = False) -> None: ...
    def finish(self, status: str = "completed", error: str | None = None) -> None: ...

    def __enter__(self) -> _NullRun:
        return self

    def __exit__(self, *exc: Any) -> None: ...
