"""Faulty partners: both emulators fail at random while a full sync and a stream of real-time
events run, and syncd still converges without ever jumping a ``Retry-After``.

Faults, on every Tribe and APSIS API request (token endpoints included; the webhook deliveries
from Tribe to syncd are not faulted): 10 % answered 500/502/503, 5 % 429 with ``Retry-After``,
2 % hang past syncd's client timeout (1 s; the hang lasts 1.5 s, then 504), and 3 % of the
writes that got through are *applied, then* answered 500/502/503 (the answer lost after the
partner committed: a retry must not duplicate anything); at Tribe, where syncd writes nothing
but token requests in this test, the first two writes lose their answer for sure (they land
on the load's changes; syncd's label writes under lost answers are
``tests/tribe/test_tribe_applied_then_failed.py``). The changes in
Tribe are made through its faulty API too (``mutate`` retries them itself, honouring
``Retry-After``, under its own token, so the emulators' accounting of ``Retry-After`` holds
syncd alone to account).

Retry policy (the decision the test documents): each API request of syncd is tried up to
8 times (``max_attempts``; the product default is 6). At a 17 % failure rate a request
exhausts 8 attempts with a probability of about 1e-6, so over the ~2,000 requests of a run
no write should fail for good. Should one still be exhausted, a real-time event becomes a
dead letter whose reason says so ("still failing after N attempts"): the test accepts
only that reason, replays such dead letters through the admin client (``events retry``, as an
operator would) and requires convergence afterwards. A full-sync record that failed is not
accepted (no replay exists for it short of a new full sync, which would hide lost events).

The faults stay on for the full sync and the events, and go off only for the final reads:
APSIS equals the rules applied to Tribe's current data (``syncd.app.sandbox.compare``, consents
and tags included), no duplicate profile, nothing pending or dead, and both emulators count
``retry_after_violations == 0``. Each kind of fault is counted per emulator: each of the two
must have answered 429s, hangs, 5xx and applied-then-failed writes (a sum over both could hide
an emulator that never faulted).
"""

from __future__ import annotations

import time

import pytest
from chaos_support import (
    NAME,
    Load,
    describe,
    differences,
    duplicate_profiles,
    integration_status,
    log_counts,
    query,
    seed_from_env,
    settle,
    use_one_token,
    wait_for,
    wait_run,
    wait_webhooks_registered,
)

CONTACTS = 300
FAULTS = {"error_rate": 0.10, "throttle_rate": 0.05, "retry_after": 0.5, "hang_rate": 0.02,
          "hang_seconds": 1.5, "fail_after_rate": 0.03}
CLIENT = {"timeout": 1.0, "max_attempts": 8}


def off(*emulators) -> None:
    for emu in emulators:
        emu.set_faults(error_rate=0.0, throttle_rate=0.0, hang_rate=0.0, latency=0.0,
                       fail_after_rate=0.0, fail_after_next=[], fail_next=[])


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sync_and_events_converge_with_faulty_partners(chaos):
    seed = seed_from_env(4242)
    print(f"\nchaos seed {seed} (CHAOS_SEED={seed} replays this run)")
    tribe, apsis, path, daemon = chaos(
        CONTACTS, tribe={"seed": seed, "delivery_attempts": 8, "delivery_backoff": 0.1},
        apsis={"seed": seed + 1},
        tribe_options=CLIENT, apsis_options={**CLIENT, "export_poll_interval": 0.05},
        integration={"page_size": 25})
    client = daemon.start().wait_ready()
    wait_webhooks_registered(tribe, daemon.receiver_port)
    use_one_token(tribe)  # before the faults: the test's token request is never faulted

    for emu in (tribe, apsis):
        emu.reset_stats()
        emu.set_faults(**FAULTS)
    # Tribe sees a few hundred requests: one 429 and one 504 scheduled, so that its own
    # counts below cannot be zero by chance (APSIS, with thousands, needs none)
    tribe.set_faults(fail_next=[429, 504], fail_after_next=[502, 502])
    started = time.monotonic()
    run_id = client.start_sync(NAME, confirm=True)["run_id"]
    load = Load(tribe, seed=seed + 2, burst=(1, 3), pause=(0.1, 0.4))
    load.start()
    try:
        # real-time events all through the full sync, and a little after it
        run = wait_run(client, run_id, timeout=80)
        time.sleep(1.0)
    finally:
        load.stop()
    sync_took = time.monotonic() - started
    assert tribe.wait_deliveries(60), "the Tribe emulator still has webhooks to deliver"
    settle(client, timeout=60)

    replayed = 0
    for _ in range(3):  # dead letters: only for retries exhausted, replayed as an operator would
        dead = client.events(failed=True, integration=NAME)
        if not dead:
            break
        # exhausted: one request past its 8 attempts, or the event past its 8 attempts
        assert all("still failing after" in (d["error"] or "") or d["attempts"] >= 8
                   for d in dead), dead
        replayed += client.retry_events(integration=NAME)["requeued"]
        settle(client, timeout=60)

    stats = {"tribe": tribe.stats(), "apsis": apsis.stats()}
    connections = client.status()["connections"]
    off(tribe, apsis)  # only for the final comparison reads

    by_status = {name: s["by_status"] for name, s in stats.items()}
    retries = {name: (connections[name].get("stats") or {}).get("retries")
               for name in ("tribe", "apsis")}
    deliveries = tribe.deliveries()
    print(f"full sync #{run_id} {run['status']} in {sync_took:.1f} s: " + describe(
        {k: run[k] for k in ("processed", "created", "updated", "unchanged", "skipped",
                             "failed")}))
    print(f"changes made in Tribe: {load.made}; deliveries {len(deliveries)}; syncd's "
          f"retries {retries}; dead letters replayed {replayed}")
    print(f"answers: {by_status}")
    print("daemon log:", describe(log_counts(daemon, "event.retry", "event.dead_letter",
                                             "record.failed", "webhook.accepted")))

    assert load.errors == [], f"changes that could not be made in Tribe: {load.errors[:3]}"
    # the faults did happen, at each emulator, and syncd did retry through them
    print("applied, then failed:", {n: s["applied_then_failed"] for n, s in stats.items()})
    for name in ("tribe", "apsis"):
        answers = by_status[name]
        assert answers.get("429") and answers.get("504"), (name, answers)
        assert sum(answers.get(c, 0) for c in ("500", "502", "503")), (name, answers)
        assert stats[name]["applied_then_failed"] > 0, (name, stats[name])
        assert retries[name] and retries[name] > 0, connections[name]
    assert load.made >= 20

    # never a request before a Retry-After had passed
    assert stats["tribe"]["retry_after_violations"] == 0, stats["tribe"]
    assert stats["apsis"]["retry_after_violations"] == 0, stats["apsis"]

    # converged
    assert run["status"] == "completed", (run.get("error"), run)
    assert run["failed"] == 0, client.run(run_id)["errors"]
    assert all(d["delivered"] for d in deliveries)
    inbox = integration_status(client)["inbox"]
    assert set(inbox) <= {"done"}, (inbox, client.events())
    state = dict(query(daemon.state_dir, "SELECT status, count(*) FROM inbox GROUP BY status"))
    assert state.get("done", 0) >= len(deliveries), state
    assert differences(path, tribe, apsis) == []
    assert duplicate_profiles(apsis) == []
    wait_for(daemon.running, 1, "the daemon to be running")
