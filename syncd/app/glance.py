"""What ``syncd status`` adds to the daemon's state for a view at a glance: per integration
the queue, the lag of its oldest pending event, the next jobs, the progress of a running
full sync with an ETA, and why it is not ready; per connection its health (its last
preflight check) and its use of the rate budget (:func:`syncd.metrics.connection_use`)."""

from __future__ import annotations

import time
from typing import Any

from syncd import metrics
from syncd.config.needs import connection_key


def integration(daemon: Any, name: str, oldest: dict[str, float], not_ready: list[str],
                jobs: list[dict[str, Any]]) -> dict[str, Any]:
    now = time.time()
    counts = daemon.store.inbox_counts().get(name, {})
    out: dict[str, Any] = {
        "queue": counts.get("pending", 0) + counts.get("retry", 0),
        # opt-outs of the destination not yet written back to the source (waiting or held)
        "write_backs": daemon.store.unwritten_count(name),
        "oldest_pending_age": now - oldest[name] if name in oldest else None,
        "next_jobs": [{"id": j["id"], "kind": j["kind"], "next_run": j.get("next_run")}
                      for j in jobs if j.get("integration") == name],
        "not_ready": [r.split(": ", 1)[1] for r in not_ready if r.startswith(f"{name}: ")],
        "eta": None,
    }
    progress = daemon.progress.get(name)
    if progress is not None and progress.state == "full_sync" and progress.run_id:
        out["eta"] = eta(daemon.store.run(progress.run_id), progress.processed, progress.total,
                         now)
    return out


def eta(run: dict[str, Any] | None, processed: int, total: int | None, now: float
        ) -> dict[str, Any] | None:
    """Seconds left at this run's pace so far (None until it has a pace and a total)."""
    if not run or not total:
        return None
    elapsed = max(0.001, now - run["started_at"])
    done_here = run.get("processed") or 0  # this run's own rows (a resumed run starts at 0)
    rate = done_here / elapsed
    left = max(0, total - processed)
    return {"elapsed": elapsed, "per_s": rate, "left": left,
            "seconds": left / rate if rate > 0 else None}


def connection(daemon: Any, name: str) -> dict[str, Any]:
    key = connection_key(name)
    errors, checked = [], False
    for integration in daemon.config.integrations:
        pre = daemon.preflights.status(integration)
        if pre.get("state") not in ("pending", "running") and name in (
                daemon.config.integrations[integration].source,
                daemon.config.integrations[integration].destination):
            checked = True
        errors += [e for e in pre.get("connection_errors", []) if e.startswith(key + ":")]
    health = ("error: " + errors[0].split(": ", 1)[1] if errors
              else "ok" if checked else "not checked yet")
    return {"health": health, "use": metrics.connection_use(name)}
