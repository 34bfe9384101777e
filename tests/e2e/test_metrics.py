"""/metrics, /healthz and /readyz of the real daemon against the emulators: scraped during a
full sync, the counters agree with ``syncd runs show``."""

from __future__ import annotations

import requests
from e2e_support import NAME, wait_for, wait_run
from prometheus_client.parser import text_string_to_metric_families

from syncd.engine.store import COUNTERS


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    r = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)  # no token needed
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def value(samples, name: str, **labels) -> float:
    return sum(v for (n, ls), v in samples.items()
               if n == name and all(dict(ls).get(k) == w for k, w in labels.items()))


def test_metrics_during_a_full_sync_agree_with_runs_show(setup, emulators):
    path, config, daemon = setup(integration={"page_size": 20},
                                 apsis_options={"requests_per_second": 200.0})
    client = daemon.start().wait_ready()
    emulators.tribe.faults.latency = 0.1  # ten pages: the run lasts long enough to watch
    run_id = client.start_sync(NAME)["run_id"]
    during = wait_for(lambda: (s := scrape(daemon.admin_port)) and value(
        s, "syncd_full_sync_progress_records", integration=NAME) > 0 and s,
        30, "a scrape while the full sync runs")
    expected = value(during, "syncd_full_sync_total_records", integration=NAME)
    assert value(during, "syncd_integration_up", integration=NAME) == 1
    run = wait_run(client, run_id)
    emulators.tribe.faults.latency = 0.0
    assert run["status"] == "completed", run
    assert expected == run["total"] and run["processed"] == run["total"]
    after = scrape(daemon.admin_port)
    for outcome in COUNTERS:
        assert value(after, "syncd_records_total", integration=NAME, kind="full",
                     outcome=outcome) == run[outcome], outcome
    assert value(after, "syncd_runs_total", integration=NAME, kind="full",
                 status="completed") == 1
    assert value(after, "syncd_run_duration_seconds_count", integration=NAME, kind="full") == 1
    assert value(after, "syncd_job_last_success_timestamp_seconds", integration=NAME,
                 job="full") >= run["started_at"]
    # every HTTP call counted per connection and status, each with its latency observed
    for connection in ("tribe", "apsis"):
        calls = value(after, "syncd_http_requests_total", connection=connection)
        assert calls > 0
        assert value(after, "syncd_http_request_duration_seconds_count",
                     connection=connection) == calls
    assert value(after, "syncd_http_requests_total", connection="tribe", status="200") > 0
    # the guard's count against its limit; an empty inbox
    assert value(after, "syncd_guard_limit", integration=NAME) > 0
    assert value(after, "syncd_inbox_depth", integration=NAME) == 0


def test_health_routes_and_rejections(setup, emulators):
    path, config, daemon = setup()
    client = daemon.start().wait_ready()
    base = f"http://127.0.0.1:{daemon.admin_port}"
    assert requests.get(base + "/healthz", timeout=5).json() == {"status": "ok"}
    # ready once the preflight of the connections has passed
    wait_for(lambda: requests.get(base + "/readyz", timeout=5).status_code == 200, 30,
             "/readyz to answer 200")
    assert value(scrape(daemon.admin_port), "syncd_ready") == 1
    # everything else still needs the token
    assert requests.get(base + "/status", timeout=5).status_code == 401
    r = requests.post(f"http://127.0.0.1:{daemon.receiver_port}/webhooks/tribe", data=b"{}",
                      timeout=5)
    assert r.status_code in (400, 401)
    samples = scrape(daemon.admin_port)
    assert value(samples, "syncd_webhook_rejections_total") >= 1
    assert client.status()["integrations"][NAME]
