"""`syncd explain` shows the HTTP calls made for a contact, with their answers: the daemon
in-process against the Tribe and APSIS emulators (real HTTP, real actors, a real SQLite file).
A write through the per-profile path shows its PATCH with status and ms; one that met a 429
shows the retry and the wait; one imported in bulk shows the import's calls, stored once for
all the import's profiles. No credential ever reaches the journal or the output."""

from __future__ import annotations

import glob
import json
import re
from functools import partial

import pytest
import requests
import tomli_w
from syncd_apsis.connector import ApsisConnector
from syncd_apsis.emulator import ApsisEmulator
from syncd_tribe.connector import TribeConnector
from syncd_tribe.emulator import TribeEmulator

from syncd import testing
from syncd.app import cli
from syncd.app.sandbox import INTEGRATION, _free_port, build_config

wait_for = partial(testing.wait_for, timeout=30.0)
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")

#: A recognisable secret in every credential: none may show anywhere syncd explain reads.
SECRETS = {"tribe": "tribe-client-S3CRET-7a1c0e", "apsis": "apsis-client-S3CRET-4e2b9d",
           "webhook": "tribe-webhook-S3CRET-9f0d3a", "tasks": "tasks-endpoint-S3CRET-2c8e"}


@pytest.fixture
def accounts():
    tribe = TribeEmulator(seed=1, delivery_backoff=0.05, client_secret=SECRETS["tribe"],
                          webhook_secret=SECRETS["webhook"])
    tribe.seed(40, seed=1)
    apsis = ApsisEmulator(seed=2, requests_per_second=1000.0, per_key_per_second=100.0,
                          token_limit_per_minute=10_000, client_secret=SECRETS["apsis"])
    tribe.start()
    apsis.start()
    try:
        yield tribe, apsis
    finally:
        tribe.stop()
        apsis.stop()


@pytest.fixture
def start(tmp_path, inprocess_daemons):
    def run(tribe, apsis, **integration):
        rules = {k: v for k, v in TribeConnector.sandbox_rules().items()
                 if k != "response_events"}  # no response-data job calling APSIS meanwhile
        rules.update(tasks_secret=SECRETS["tasks"], **integration)
        destination = ApsisConnector.sandbox_config(apsis)
        config = build_config(str(tmp_path / "state"), TribeConnector.sandbox_config(tribe),
                              destination, rules, _free_port(), _free_port())
        path = tmp_path / "syncd.toml"
        path.write_bytes(tomli_w.dumps(config).encode())
        d = inprocess_daemons(path).start(30)
        return d.daemon, d.client, path

    return run


def full_sync(client) -> None:
    run = client.start_sync(INTEGRATION, confirm=True)["run_id"]
    assert wait_for(lambda: client.run(run)["status"] != "running")
    assert client.run(run)["status"] == "completed", client.run(run)


def written(daemon) -> list[str]:
    return [r[0] for r in daemon.store._read(
        "SELECT source_id FROM links WHERE integration=? AND digest IS NOT NULL "
        "ORDER BY source_id", (INTEGRATION,))]


def explain(capsys, cfg, record: str, *flags: str) -> str:
    """What ``syncd explain`` prints (without the in-process daemon's log lines)."""
    capsys.readouterr()
    assert cli.main(["explain", "-c", str(cfg), INTEGRATION, record, *flags]) == 0
    return "".join(line for line in capsys.readouterr().out.splitlines(keepends=True)
                   if not LOG_LINE.match(line))


def calls_of(story: dict, request: str) -> list[dict]:
    """The calls of the newest answer to ``request`` ("write", "read back from crm")."""
    answers = [e["data"] for e in story["entries"]
               if e["kind"] == "answer" and e["data"]["request"] == request]
    assert answers, story
    return answers[-1].get("calls") or []


def assert_no_secret(state_dir, tribe, apsis, *outputs: str) -> None:
    """No credential, no token the emulators issued, no pre-signed upload token in the state
    files (the journal's tables with everything else) or in what explain printed."""
    issued = [*tribe.tokens._tokens, *apsis.tokens._tokens, *apsis._uploads]
    assert issued
    texts = [open(f, "rb").read().decode("utf-8", "replace")
             for f in glob.glob(f"{state_dir}/*.db*")] + list(outputs)
    assert len(texts) > len(outputs), "no state file read"
    for text in texts:
        for secret in [*SECRETS.values(), *issued]:
            assert secret not in text


def test_per_profile_writes_show_their_calls_and_a_429_its_retry_and_wait(
        accounts, start, capsys, tmp_path):
    tribe, apsis = accounts
    daemon, client, cfg = start(tribe, apsis)
    full_sync(client)
    rid = written(daemon)[0]

    screen = explain(capsys, cfg, rid)
    # a key syncd never wrote: v1 PATCH by version ids creates it; then consents and tags
    assert re.search(rf"answer   write: created\n +call PATCH /audience/keyspaces/\S+/profiles/"
                     rf"{rid}/sections/\S+/attributes: 201 in \d+ ms", screen), screen
    assert re.search(r"call POST /v2/audience/\S+/consents: 20\d in \d+ ms", screen), screen
    assert len(screen.splitlines()) <= 24  # one screen
    assert "/oauth/token" not in screen and "/attributes:" in screen  # token: no record's
    assert "GET /audience/sections/" not in screen  # nor the definitions

    # a change in Tribe; APSIS answers its write 429 once (Retry-After 1 s)
    apsis.set_faults(fail_next=[429], retry_after=1.0)
    tribe.api_session().put(f"{tribe.url}/v1/odata/Relation_Person({rid})",
                            json={"FirstName": "Retried"}, timeout=10).raise_for_status()
    assert wait_for(lambda: any(c.get("status") == 429 for c in calls_of(
        client.explain(INTEGRATION, rid), "write")))
    story = json.loads(explain(capsys, cfg, rid, "--json"))
    patch = [c for c in calls_of(story, "write") if c["method"] == "PATCH"]
    assert [(c["status"], c["attempt"]) for c in patch[:2]] == [(429, 1), (204, 2)], patch
    assert patch[0]["retry_after"] == 1.0 and patch[1]["waited"] >= 0.9
    assert patch[0]["path"] == patch[1]["path"]
    assert re.fullmatch(rf"/v2/audience/keyspaces/\S+/profiles/{rid}/sections/\S+/attributes",
                        patch[0]["path"])
    assert all(isinstance(c["ms"], int) for c in patch)
    read_back = calls_of(story, "read back from crm")
    assert read_back and all(c["method"] == "GET" and c["status"] == 200 for c in read_back)
    assert rid in read_back[0]["path"]  # the OData filter, as sent

    screen = explain(capsys, cfg, rid)
    assert re.search(r"call PATCH /v2/\S+/attributes: 429 in \d+ ms \(Retry-After 1 s\)",
                     screen), screen
    assert re.search(r"call PATCH /v2/\S+/attributes: 204 in \d+ ms \(attempt 2, after "
                     r"waiting 1\.0 s\)", screen), screen
    assert re.search(rf"call GET /v1/odata/Relation_Person\?\S*&\$filter=ID eq {rid}&", screen)
    assert len(screen.splitlines()) <= 40
    assert_no_secret(tmp_path / "state", tribe, apsis, screen, json.dumps(story))


def test_a_bulk_import_shows_its_calls_stored_once_for_all_its_profiles(
        accounts, start, capsys, tmp_path):
    tribe, apsis = accounts
    daemon, client, cfg = start(tribe, apsis, bulk_threshold=10, bulk_batch=1000,
                                page_size=50)
    full_sync(client)
    ids = written(daemon)
    assert len(ids) > 3, client.runs(INTEGRATION)
    story = json.loads(explain(capsys, cfg, ids[0], "--json"))
    made = calls_of(story, "write")
    assert [(c["method"], c["status"]) for c in made[:2]] == [("POST", 201), ("PUT", 200)], made
    assert made[0]["path"] == f"/v2/audience/sections/{apsis.section}/imports", made
    assert made[1]["path"] == "{file_upload_url}", made  # pre-signed: never the URL itself
    assert made[-1]["method"] == "GET" and "/imports/" in made[-1]["path"], made
    assert calls_of(json.loads(explain(capsys, cfg, ids[-1], "--json")), "write") == made
    # stored once, referenced by each profile of the import
    stored = [json.loads(r[0]) for r in daemon.store._read("SELECT data FROM journal_call")]
    assert stored == made
    screen = explain(capsys, cfg, ids[0])
    assert re.search(r"call POST /v2/audience/sections/\S+/imports: 201 in \d+ ms", screen)
    assert "call PUT {file_upload_url}: 200 in" in screen
    assert len(screen.splitlines()) <= 24
    assert_no_secret(tmp_path / "state", tribe, apsis, screen, json.dumps(story),
                     requests.utils.quote(screen))
