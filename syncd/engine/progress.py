"""What a coordinator is doing, readable from any thread without asking the actor."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Progress:
    """What a coordinator is doing, readable from any thread without asking the actor."""

    state: str = "idle"  # idle | full_sync | stopped
    run_id: int | None = None
    total: int | None = None
    processed: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    events_applied: int = 0
    events_failed: int = 0
    dead_letters: int = 0
    last_error: str | None = None
    needs_full_sync: bool = False
    #: Why the real-time path is paused (fail-fast, :mod:`syncd.engine.failfast`), or None.
    paused: str | None = None
    #: Set while a reload applies a new config: events wait, then apply under it.
    reloading: threading.Event = field(default_factory=threading.Event)
    #: Set from any thread to cancel the running full sync after its current page; not a
    #: message, because the actor may be busy waiting for that page.
    cancel: threading.Event = field(default_factory=threading.Event)

    def request_cancel(self) -> int | None:
        """Cancel the running full sync; returns its run id, or None if none runs."""
        if self.state != "full_sync":
            return None
        self.cancel.set()
        return self.run_id


def processed_before(store: Any, resume: dict[str, Any] | None) -> int:
    """What the runs a full sync resumes processed (``resume`` is the run it resumes, read
    from ``store``): each counts from its own resume."""
    done, seen = 0, set()
    while resume and resume.get("id") not in seen:
        seen.add(resume.get("id"))
        done += int(resume.get("processed") or 0)
        before = resume.get("resumed_from")
        resume = store.run(before) if before else None
    return done
