"""Dry runs against the emulators, with the real daemon (in this process: its actors, its
coordinator, its SQLite file) syncing Tribe to APSIS One:

- a profile changed directly in APSIS (the emulator's control endpoint) after syncd last wrote
  it is an update in the dry run, read live; a dry run decided on what syncd knows (the
  attributes it last sent) misses it; ``--plan`` writes it back;
- a consent opted out in APSIS (a person's, not seen by a consent poll) is kept, as the
  consent rules say, and listed as kept;
- the dry run writes nothing: between its start and its end neither emulator's request log
  holds a method other than GET (token requests apart);
- a destination connector without read_profiles gets a dry run on what syncd knows, labelled
  so in the plan and in ``syncd runs show``.
"""

from __future__ import annotations

import time
from functools import partial

import pytest
import requests
from e2e_support import NAME, build_config, free_port, write_config
from syncd_apsis.connector import ApsisConnector

from syncd import testing
from syncd.app import cli
from syncd.connectors import plugins
from syncd.connectors.capabilities import Capability

wait_for = partial(testing.wait_for, timeout=60.0)
NEWSLETTER = "com.apsis1.topics.newsletter"
FIRSTNAME = "com.apsis1.attributes.firstname"


class ApsisWithoutReads(ApsisConnector):
    kind = "apsis-noread"
    capabilities = ApsisConnector.capabilities - {Capability.READ_PROFILES}


def config(tmp_path, emulators, kind="apsis", **integration):
    cfg = build_config(str(tmp_path / "state"), emulators.tribe, emulators.apsis,
                       receiver_port=free_port(), admin_port=free_port(),
                       integration={"response_events": [], "consent_poll_interval": 3600.0,
                                    **integration})
    cfg["integrations"][NAME].pop("tasks_secret", None)
    cfg["connections"]["apsis"]["kind"] = kind
    return write_config(str(tmp_path / "syncd.toml"), cfg), cfg


@pytest.fixture
def daemon_in_process(inprocess_daemons):
    def start(path):
        registry = plugins.load()
        registry.connectors["apsis-noread"] = ApsisWithoutReads
        d = inprocess_daemons(path, registry).start(30)
        return d.daemon, d.client

    return start


def ended(client, run_id):
    assert wait_for(lambda: client.run(run_id)["status"] != "running")
    return client.run(run_id)


def writes_between(emu, t0, t1, token_path):
    return sorted({(m, p) for t, m, p, _ in list(emu.requests)
                   if t0 <= t <= t1 and m != "GET" and p != token_path
                   and not p.startswith("/_emulator/")})


def test_a_live_dry_run_sees_what_changed_in_apsis_and_writes_nothing(
        tmp_path, emulators, daemon_in_process, capsys):
    path, cfg = config(tmp_path, emulators)
    daemon, client = daemon_in_process(path)
    assert ended(client, client.start_sync(NAME)["run_id"])["status"] == "completed"
    apsis = emulators.apsis
    held = apsis.snapshot()
    edited = sorted(k for k, a in held.items() if a.get(FIRSTNAME))[0]
    opted = sorted(k for k in held if k != edited and apsis.consents(k).get(
        (NEWSLETTER, "com.apsis1.channels.email")) == "opt-in")[0]
    answer = requests.patch(f"{apsis.url}/_emulator/profile/{edited}", timeout=5,
                            json={"attributes": {FIRSTNAME: "Edited in APSIS"}})
    assert answer.status_code == 204
    answer = requests.patch(f"{apsis.url}/_emulator/profile/{opted}", timeout=5,
                            json={"consents": {f"{NEWSLETTER}|email": "opt-out"}})
    assert answer.status_code == 204

    t0 = time.time()
    run = ended(client, client.start_sync(NAME, dry_run=True)["run_id"])
    t1 = time.time()
    assert run["status"] == "completed" and run["plan"]["basis"] == "live", run
    assert writes_between(apsis, t0, t1, "/oauth/token") == []
    assert writes_between(emulators.tribe, t0, t1, "/oauth2/token") == []
    assert apsis.profile(edited)[FIRSTNAME] == "Edited in APSIS"
    plan = {e["record_id"]: e for e in run["plan"]["entries"]}
    assert plan[edited]["action"] == "update"
    assert plan[edited]["attributes"] == {
        FIRSTNAME: {"old": "Edited in APSIS", "new": held[edited][FIRSTNAME]}}
    assert plan[opted]["action"] == "unchanged"
    assert list(plan[opted]["kept"]) == [f"{NEWSLETTER}|email"]
    assert set(plan) == {edited, opted}, plan.keys()
    assert run["updated"] == 1

    capsys.readouterr()
    assert cli.main(["runs", "-c", path, "show", str(run["id"])]) == 0
    shown = capsys.readouterr().out
    assert "compared with: the profiles read live from connection apsis" in shown
    assert f"update {edited}: {FIRSTNAME}: 'Edited in APSIS' -> " in shown
    assert f"unchanged {opted}: consent {NEWSLETTER}|email opt-out kept" in shown

    cfg["integrations"][NAME]["dry_run_read"] = "known"  # what syncd knows: the old way
    write_config(path, cfg)
    assert client.reload()["ok"] is True
    known = ended(client, client.start_sync(NAME, dry_run=True)["run_id"])
    assert known["plan"]["basis"] == "known" and known["plan"]["entries"] == []

    applied = ended(client, client.start_sync(NAME, plan=run["id"])["run_id"])
    assert (applied["status"], applied["updated"], applied["failed"]) == ("completed", 1, 0)
    assert apsis.profile(edited)[FIRSTNAME] == held[edited][FIRSTNAME]
    assert apsis.consents(opted)[(NEWSLETTER, "com.apsis1.channels.email")] == "opt-out"


def test_a_destination_without_profile_reads_falls_back_labelled(
        tmp_path, emulators, daemon_in_process, capsys):
    path, cfg = config(tmp_path, emulators, kind="apsis-noread")
    daemon, client = daemon_in_process(path)
    assert ended(client, client.start_sync(NAME)["run_id"])["status"] == "completed"
    reads_before = [r for r in list(emulators.apsis.requests) if r[1] == "GET"]
    run = ended(client, client.start_sync(NAME, dry_run=True)["run_id"])
    assert run["status"] == "completed" and run["plan"]["basis"] == "known"
    assert "connection apsis (kind apsis-noread) cannot read profiles back" in \
        run["plan"]["note"]
    assert [r for r in list(emulators.apsis.requests) if r[1] == "GET"] == reads_before
    capsys.readouterr()
    assert cli.main(["runs", "-c", path, "show", str(run["id"])]) == 0
    assert "compared with: NOT A LIVE READ: connection apsis (kind apsis-noread) cannot " \
        "read profiles back" in capsys.readouterr().out
