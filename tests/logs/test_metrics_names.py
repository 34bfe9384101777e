"""contrib/grafana-syncd.json uses exactly the metric names syncd exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from syncd import metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "contrib" / "grafana-syncd.json"


def expressions() -> list[str]:
    data = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in data["panels"] for t in p.get("targets", [])]


def test_every_metric_in_the_dashboard_is_exported():
    used = {name for expr in expressions() for name in re.findall(r"\bsyncd_[a-z_]+", expr)}
    assert used, "the dashboard names no syncd metric"
    assert used <= metrics.NAMES, sorted(used - metrics.NAMES)


def test_every_exported_metric_is_on_the_dashboard():
    used = " ".join(expressions())
    families = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in metrics.NAMES}
    missing = {f for f in families if not re.search(rf"\b{f}(_total|_bucket|_sum|_count)?\b",
                                                      used)}
    assert not missing, sorted(missing)


def test_registered_counters_are_the_names_listed():
    """NAMES is what a scrape shows: the counters and histograms registered, plus the
    gauges read at scrape time."""
    exported = {s.name for family in metrics.REGISTRY.collect() for s in family.samples
                if not s.name.endswith("_created")}
    for family in metrics.REGISTRY.collect():
        if not family.samples:  # labelled and never used in this process: name by type
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"],
                        "gauge": [""]}[family.type]
            exported |= {family.name + s for s in suffixes}
    assert exported <= metrics.NAMES, sorted(exported - metrics.NAMES)


def test_connection_use_for_status():
    """Requests a second over the last minute (or since the first), against the budget."""
    metrics.budget("use-test", 10.0)
    for _ in range(3):
        metrics.http_sent("use-test", 200, 0.01)
    metrics.http_waited("use-test", "rate_budget", 0.5)
    use = metrics.connection_use("use-test")
    assert 1.5 <= use["requests_per_s"] <= 3  # 3 requests within one or two seconds
    assert use["budget_per_s"] == 10.0 and use["waited_budget_s"] == 0.5
    assert use["waited_retry_after_s"] == 0.0
