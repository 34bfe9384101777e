"""The response-data job: one interval job per integration that writes response data,
reconciled with the config like the daily jobs, sending ``responses`` to the coordinator."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime

from syncd.app.scheduler import Scheduler, job_specs
from syncd.config.model import Config, IntegrationConfig

JOB = "tribe-apsis:responses"


def config(**changes) -> Config:
    integration = replace(IntegrationConfig("tribe-apsis", "tribe", "apsis"), **changes)
    return Config(path="/etc/syncd.toml", integrations={integration.name: integration})


def test_an_interval_job_only_when_response_events_are_set():
    assert JOB not in job_specs(config())
    spec = job_specs(config(response_events=("email_opened",)))[JOB]
    assert (spec.kind, spec.interval, spec.schedule) == ("responses", 900.0, None)
    assert JOB not in job_specs(config(response_events=("email_opened",), enabled=False))


def test_reconcile_reschedules_on_a_new_interval_and_the_job_sends_responses():
    sent: list[tuple[str, str]] = []
    called = threading.Event()

    def send(integration, job, params):
        sent.append((integration, job))
        called.set()

    scheduler = Scheduler(send)
    try:
        assert scheduler.reconcile(config(response_events=("email_opened",)))["added"] == [JOB]
        scheduler.start()
        [job] = scheduler.jobs()
        assert job["schedule"] == "every 900 s" and job["kind"] == "responses"
        first = datetime.fromisoformat(job["next_run"])
        assert 890 < (first - datetime.now(UTC)).total_seconds() <= 900
        changed = scheduler.reconcile(config(response_events=("email_opened",),
                                             responses_interval=120.0))
        assert changed["changed"] == [JOB]
        [job] = scheduler.jobs()
        assert job["schedule"] == "every 120 s"
        assert (datetime.fromisoformat(job["next_run"]) - datetime.now(UTC)
                ).total_seconds() <= 120
        scheduler._scheduler.modify_job(JOB, next_run_time=datetime.now(UTC))
        assert called.wait(10)
        assert sent == [("tribe-apsis", "responses")]
        assert scheduler.reconcile(config())["removed"] == [JOB]
    finally:
        scheduler.shutdown(wait=True)
