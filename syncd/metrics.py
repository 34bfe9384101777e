"""Prometheus metrics counted where things happen, by every layer of syncd.

Two kinds of metric:

- **Counters and histograms** counted where things happen (process-wide, in
  :data:`REGISTRY`): events received per integration (receiver), applied, failed and
  dead-lettered (real-time path), records per outcome and runs with their duration (the
  store's run rows, so they agree with ``syncd runs show``), HTTP calls per connection and
  status with their latency, seconds waited on rate budgets and on Retry-After (the outgoing
  client, :mod:`syncd.connectors.httpclient`), the last success of each job.
- **Gauges read when scraped** from the daemon's state (:data:`SCRAPED`, read by
  :class:`syncd.app.scrape.DaemonCollector`): inbox depth by status, age of the oldest
  pending event, webhook rejections by reason (the receiver's exact counters), consent
  changes and deletes counted by the guard against its limit, whether an integration is held
  or paused, readiness.

Every name is listed in :data:`NAMES`; ``contrib/grafana-syncd.json`` uses only these (a
test checks it). No label ever holds a record id, a URL or a secret: integration,
connection, job, status, outcome and reason codes only.

This module sits below every layer (it imports nothing of syncd), so the connectors, the
engine and the web edge count into it; serving ``/metrics`` is the application's
(:mod:`syncd.app.scrape`, :mod:`syncd.app.health`).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: The counters and histograms; process-wide (a daemon per process).
REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS_RECEIVED = Counter("syncd_events_received", "Events accepted from webhooks, per integration.",
                          ["integration"], registry=REGISTRY)
EVENTS_APPLIED = Counter("syncd_events_applied", "Real-time events applied.",
                         ["integration"], registry=REGISTRY)
EVENTS_FAILED = Counter("syncd_events_failed", "Real-time event attempts that failed.",
                        ["integration"], registry=REGISTRY)
EVENTS_DEAD = Counter("syncd_events_dead_lettered", "Real-time events that became dead letters.",
                      ["integration"], registry=REGISTRY)
RECORDS = Counter("syncd_records", "Records handled by runs, per outcome (as in runs show).",
                  ["integration", "kind", "outcome"], registry=REGISTRY)
RUNS = Counter("syncd_runs", "Runs finished, per kind and status.",
               ["integration", "kind", "status"], registry=REGISTRY)
RUN_SECONDS = Histogram("syncd_run_duration_seconds", "How long finished runs took.",
                        ["integration", "kind"], registry=REGISTRY,
                        buckets=(1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400, 43200))
HTTP_REQUESTS = Counter("syncd_http_requests", "HTTP requests sent, per connection and status "
                        "(status 'error': no answer).", ["connection", "status"],
                        registry=REGISTRY)
HTTP_SECONDS = Histogram("syncd_http_request_duration_seconds", "Latency of HTTP requests.",
                         ["connection"], registry=REGISTRY,
                         buckets=(.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60))
HTTP_WAIT = Counter("syncd_http_wait_seconds", "Seconds requests waited before leaving: "
                    "reason rate_budget (our own budget) or retry_after (the partner's).",
                    ["connection", "reason"], registry=REGISTRY)
JOB_SUCCESS = Gauge("syncd_job_last_success_timestamp_seconds",
                    "When a scheduled job last succeeded (Unix time).",
                    ["integration", "job"], registry=REGISTRY)

#: Read at scrape time by :class:`syncd.app.scrape.DaemonCollector`.
SCRAPED = {
    "syncd_inbox_depth": "Inbox events per integration and status (pending, retry, dead).",
    "syncd_inbox_oldest_pending_age_seconds": "Age of the oldest event not applied yet.",
    "syncd_webhook_rejections": "Webhook deliveries refused, per reason code.",
    "syncd_webhook_deliveries": "Webhook deliveries received.",
    "syncd_connection_discarded_messages": "Messages a connection received and discarded by "
                                           "its rules (kept in the state store), per reason.",
    "syncd_guard_changes": "Consent changes and deletes the guard counted in its window.",
    "syncd_guard_limit": "The guard's limit: changes allowed in its window.",
    "syncd_guard_held": "1 while the guard holds an integration's changes for a confirmation.",
    "syncd_integration_paused": "1 while the real-time path is paused (fail-fast).",
    "syncd_integration_up": "1 while the integration's coordinator answers.",
    "syncd_full_sync_progress_records": "Records processed by the running full sync.",
    "syncd_full_sync_total_records": "Records the running full sync expects (0: unknown).",
    "syncd_ready": "1 when /readyz answers 200.",
}

#: Every metric name syncd exports (as scraped: counters end in ``_total``).
NAMES = frozenset({
    *(f"{n}_total" for n in ("syncd_events_received", "syncd_events_applied",
                             "syncd_events_failed", "syncd_events_dead_lettered",
                             "syncd_records", "syncd_runs", "syncd_http_requests",
                             "syncd_http_wait_seconds", "syncd_webhook_rejections",
                             "syncd_webhook_deliveries",
                             "syncd_connection_discarded_messages")),
    *(f"{h}_{s}" for h in ("syncd_run_duration_seconds", "syncd_http_request_duration_seconds")
      for s in ("bucket", "sum", "count")),
    "syncd_job_last_success_timestamp_seconds",
    *(n for n in SCRAPED if n not in ("syncd_webhook_rejections", "syncd_webhook_deliveries",
                                      "syncd_connection_discarded_messages")),
})


# -- counted where it happens ------------------------------------------------------------------


def run_progress(run: dict[str, Any] | None, counts: dict[str, int]) -> None:
    """A run's row moved by ``counts`` (:meth:`syncd.engine.store.Store.progress_run`)."""
    if not run:
        return
    for outcome, value in counts.items():
        if value:
            RECORDS.labels(run["integration"], run["kind"], outcome).inc(value)


def run_finished(run: dict[str, Any] | None, status: str, ended: float) -> None:
    """A run ended (:meth:`syncd.engine.store.Store.finish_run`)."""
    if not run:
        return
    RUNS.labels(run["integration"], run["kind"], status).inc()
    if run.get("started_at"):
        RUN_SECONDS.labels(run["integration"], run["kind"]).observe(
            max(0.0, ended - run["started_at"]))
    if status == "completed":
        JOB_SUCCESS.labels(run["integration"], run["kind"]).set(ended)


def http_sent(connection: str, status: int | str, seconds: float) -> None:
    HTTP_REQUESTS.labels(connection or "-", str(status)).inc()
    HTTP_SECONDS.labels(connection or "-").observe(seconds)
    _use.sent(connection or "-")


def http_waited(connection: str, reason: str, seconds: float) -> None:
    if seconds > 0:
        HTTP_WAIT.labels(connection or "-", reason).inc(seconds)
        _use.waited(connection or "-", reason, seconds)


def budget(connection: str, rate: float | None) -> None:
    """A client of ``connection`` spends a rate budget of ``rate`` requests a second."""
    if rate:
        _use.budgets[connection or "-"] = max(rate, _use.budgets.get(connection or "-", 0.0))


def connection_use(connection: str) -> dict[str, Any]:
    """For ``syncd status``: requests a second over the last minute against the budget,
    and the seconds waited on it and on Retry-After since start."""
    return _use.of(connection)


class _Use:
    """Requests per connection in one-second buckets over the last :data:`WINDOW` s."""

    WINDOW = 60

    def __init__(self):
        self.lock = threading.Lock()
        self.buckets: dict[str, dict[int, int]] = {}
        self.waits: dict[tuple[str, str], float] = {}
        self.budgets: dict[str, float] = {}

    def sent(self, name: str) -> None:
        now = int(time.monotonic())
        with self.lock:
            buckets = self.buckets.setdefault(name, {})
            buckets[now] = buckets.get(now, 0) + 1
            if len(buckets) > self.WINDOW + 5:
                for second in [s for s in buckets if s <= now - self.WINDOW]:
                    del buckets[second]

    def waited(self, name: str, reason: str, seconds: float) -> None:
        with self.lock:
            self.waits[(name, reason)] = self.waits.get((name, reason), 0.0) + seconds

    def of(self, name: str) -> dict[str, Any]:
        now = int(time.monotonic())
        with self.lock:
            buckets = self.buckets.get(name, {})
            recent = sum(n for s, n in buckets.items() if s > now - self.WINDOW)
            # over the last minute, or since the first request when that is more recent
            span = min(self.WINDOW, now - min(buckets, default=now) + 1)
            return {"requests_per_s": recent / span, "budget_per_s": self.budgets.get(name),
                    "waited_budget_s": self.waits.get((name, "rate_budget"), 0.0),
                    "waited_retry_after_s": self.waits.get((name, "retry_after"), 0.0)}


_use = _Use()


def job_succeeded(integration: str, job: str, when: float | None = None) -> None:
    JOB_SUCCESS.labels(integration, job).set(when or time.time())
