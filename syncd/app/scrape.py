"""What ``/metrics`` serves: the counters of :mod:`syncd.metrics`, then gauges read from the
daemon's state at each scrape (:class:`DaemonCollector`).

The admin listener is loopback-only, so ``/metrics``, ``/healthz`` and ``/readyz`` answer
there without the admin token (they show counts, never data or secrets). A Prometheus on
another host scrapes ``[admin] metrics_port``, which serves ``/metrics`` (and the two health
routes) only, on ``[admin] metrics_host``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from syncd.engine import ledgerstore
from syncd.metrics import REGISTRY, SCRAPED

CONTENT_TYPE = CONTENT_TYPE_LATEST


class DaemonCollector:
    """Gauges from the daemon's state, read at each scrape. ``daemon`` offers ``config``,
    ``store``, ``coordinators``, ``progress``, ``receiver_app`` (see :mod:`syncd.app.daemon`);
    ``ready`` answers whether ``/readyz`` would be 200."""

    def __init__(self, daemon: Any, ready: Callable[[], bool]):
        self.daemon = daemon
        self.ready = ready

    def describe(self) -> list:
        return []  # not described up front: the daemon may not have started yet

    def collect(self) -> Iterable:
        d = self.daemon
        if d.config is None or d.store is None:
            return
        from syncd.engine.guard import guard_status  # the guard imports the store; keep this light

        depth = GaugeMetricFamily("syncd_inbox_depth", SCRAPED["syncd_inbox_depth"],
                                  labels=["integration", "status"])
        for integration, by_status in d.store.inbox_counts().items():
            for status, count in by_status.items():
                if status != "done":
                    depth.add_metric([integration, status], count)
        yield depth
        age = GaugeMetricFamily("syncd_inbox_oldest_pending_age_seconds",
                                SCRAPED["syncd_inbox_oldest_pending_age_seconds"],
                                labels=["integration"])
        now = time.time()
        for integration, oldest in d.store.oldest_unapplied().items():
            age.add_metric([integration], max(0.0, now - oldest))
        yield age
        yield from self._webhooks()
        discarded = CounterMetricFamily("syncd_connection_discarded_messages",
                                        SCRAPED["syncd_connection_discarded_messages"],
                                        labels=["connection", "reason"])
        for (connection, reason), count in sorted(ledgerstore.totals(d.store,
                                                                     "discarded").items()):
            discarded.add_metric([connection, reason], count)
        yield discarded
        families = {n: GaugeMetricFamily(n, SCRAPED[n], labels=labels) for n, labels in (
            ("syncd_guard_changes", ["integration"]), ("syncd_guard_limit", ["integration"]),
            ("syncd_guard_held", ["integration"]), ("syncd_integration_paused", ["integration"]),
            ("syncd_integration_up", ["integration"]),
            ("syncd_full_sync_progress_records", ["integration"]),
            ("syncd_full_sync_total_records", ["integration"]))}
        for name, integration in d.config.integrations.items():
            if not integration.enabled:
                continue
            guard = guard_status(d.store, integration)
            families["syncd_guard_changes"].add_metric([name], guard["count"])
            families["syncd_guard_limit"].add_metric([name], guard["limit"])
            families["syncd_guard_held"].add_metric([name], 1 if guard["held_since"] else 0)
            progress = d.progress.get(name)
            sup = d.coordinators.get(name)
            families["syncd_integration_paused"].add_metric(
                [name], 1 if progress is not None and progress.paused else 0)
            families["syncd_integration_up"].add_metric([name], 1 if sup and sup.alive() else 0)
            if progress is not None and progress.state == "full_sync":
                families["syncd_full_sync_progress_records"].add_metric([name],
                                                                        progress.processed)
                families["syncd_full_sync_total_records"].add_metric([name],
                                                                     progress.total or 0)
        yield from families.values()
        ready = GaugeMetricFamily("syncd_ready", SCRAPED["syncd_ready"])
        ready.add_metric([], 1 if self.ready() else 0)
        yield ready

    def _webhooks(self) -> Iterable:
        app = self.daemon.receiver_app
        if app is None:
            return
        stats = app.stats()
        rejected = CounterMetricFamily("syncd_webhook_rejections",
                                       SCRAPED["syncd_webhook_rejections"], labels=["reason"])
        for reason, count in sorted(stats["reasons"].items()):
            rejected.add_metric([reason], count)
        yield rejected
        received = CounterMetricFamily("syncd_webhook_deliveries",
                                       SCRAPED["syncd_webhook_deliveries"])
        received.add_metric([], stats["received"])
        yield received


def exposition(collector: DaemonCollector | None) -> bytes:
    """The text format of every metric: the counters, then the daemon's gauges."""
    out = generate_latest(REGISTRY)
    if collector is not None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)
        out += generate_latest(registry)
    return out
