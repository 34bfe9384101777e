"""Response data survives SIGKILL: the real daemon as a process, killed (1) right after it
downloaded the export and before any event was written, and (2) in the middle of writing,
with an activity POST applied by Tribe whose answer never came. After each restart a run
writes the rest: every event lands exactly once, none is lost."""

from __future__ import annotations

from collections import Counter

from e2e_support import (
    NAME,
    full_sync,
    matching_persons,
    syncd_cli,
    wait_for,
    wait_run,
)

TYPES = ["email_sent", "email_delivered", "email_bounced", "email_opened", "email_clicked",
         "sms_delivered", "sms_undelivered", "sms_opened", "sms_clicked"]


def landed(tribe) -> Counter:
    """How many activities each event (its ImportId) has."""
    return Counter(a["ImportId"] for a in tribe.activities("Activity_Event"))


def downloads(apsis) -> int:
    return sum(1 for _, method, path, status in list(apsis.requests)
               if method == "GET" and path.endswith("/file") and status == 200)


def test_sigkill_between_download_and_write_duplicates_and_loses_nothing(setup, emulators):
    tribe, apsis = emulators.tribe, emulators.apsis
    apsis.configure_exports(export_delay=0.05, duplicate_rate=0.3, zero_time_rate=0.1)
    path, _, daemon = setup(integration={"response_events": TYPES, "responses_rate": 0.0,
                                      "responses_batch": 5},
                         apsis_options={"export_poll_interval": 0.05})
    client = daemon.start().wait_ready()
    assert full_sync(client)["status"] == "completed"
    persons = matching_persons(tribe, apsis, 6)
    for pid in persons:
        for kind in ("SENT", "DELIVERED", "BOUNCED", "OPENED", "CLICKED"):
            apsis.record_event(pid, kind)
        for kind in ("DELIVERED", "UNDELIVERED", "OPENED", "CLICKED"):
            apsis.record_sms_event(pid, kind, duplicate=kind == "OPENED")
    expected = 6 * 9

    # (1) killed right after the download: every Tribe request is slow, nothing written yet
    tribe.faults.latency = 2.0
    before = downloads(apsis)
    client.run_responses(NAME)
    wait_for(lambda: downloads(apsis) >= before + 2, 30, "both export downloads")
    daemon.kill()
    assert landed(tribe) == Counter()
    tribe.faults.latency = 0.0

    # (2) killed mid-write: one activity POST is applied, then its answer hangs
    tribe.faults.hang_seconds = 20.0
    tribe.faults.fail_after_path = "Activity_Event"
    tribe.faults.fail_after_next = [504]
    client = daemon.start().wait_ready()
    client.run_responses(NAME)
    wait_for(lambda: tribe.stats()["applied_then_failed"] >= 1, 30, "an applied, hanging POST")
    wait_for(lambda: len(landed(tribe)) >= 3, 30, "a few activities")
    daemon.kill()
    tribe.faults.fail_after_next = []
    tribe.faults.hang_seconds = 0.1
    partial = landed(tribe)
    assert 0 < sum(partial.values()) < expected

    # after the restart a run writes the rest, each event once
    client = daemon.start().wait_ready()
    run_id = client.run_responses(NAME)["run_id"]
    run = wait_run(client, run_id, 60)
    assert run["status"] == "completed", run
    final = landed(tribe)
    assert len(final) == expected and set(final.values()) == {1}, final
    assert set(partial) <= set(final)
    # the events the killed runs had marked 'sending' were looked up, not written again
    assert run["created"] == expected - len(partial), run
    shown = client.run(run_id)
    assert shown["counts"]["email_opened"] + shown["counts"]["sms_clicked"] >= 1
    runs = [r for r in client.runs(NAME) if r["kind"] == "responses"]
    assert [r["status"] for r in runs[:3]] == ["completed", "interrupted", "interrupted"]
    # the CLI shows the run's counts per event type, and the next run and the export lag
    shown = syncd_cli("runs", "show", str(run_id), "-c", path)
    assert shown.returncode == 0 and "counts: " in shown.stdout
    assert "email_opened 6, " in shown.stdout and "sms_clicked 6" in shown.stdout
    status = syncd_cli("status", "-c", path)
    assert f"{NAME} response data: next run" in status.stdout and "export lag" in status.stdout
