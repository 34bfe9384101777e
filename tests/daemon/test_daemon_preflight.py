"""The daemon's preflight, in-process against the Tribe and APSIS emulators (real HTTP, real
actors, a real SQLite file): shown in status, logged, refusing a full sync whose mappings name
what the account lacks, never stopping the start nor the receiver."""

from __future__ import annotations

import random
from functools import partial

import pytest
import tomli_w
from structlog.testing import capture_logs
from syncd_apsis.connector import ApsisConnector
from syncd_apsis.emulator import ApsisEmulator
from syncd_tribe.connector import TribeConnector
from syncd_tribe.emulator import TribeEmulator

from syncd import testing
from syncd.app.sandbox import INTEGRATION, _free_port, build_config
from syncd.exceptions import AdminError

wait_for = partial(testing.wait_for, timeout=30.0)


def settled(client, state: str) -> dict:
    """The integration's preflight once it is ``state`` and no run is going on."""
    assert wait_for(lambda: (p := preflight_of(client))["state"] == state
                    and not p.get("running")), preflight_of(client)
    return preflight_of(client)
KEY = f'integrations.{INTEGRATION}.fields."Contact.Organization.Name"'


@pytest.fixture
def accounts():
    tribe = TribeEmulator(seed=1, delivery_backoff=0.05)
    tribe.seed(30, seed=1)
    apsis = ApsisEmulator(seed=2, requests_per_second=1000.0, per_key_per_second=100.0,
                          token_limit_per_minute=10_000)
    tribe.start()
    apsis.start()
    try:
        yield tribe, apsis
    finally:
        tribe.stop()
        apsis.stop()


@pytest.fixture
def start(tmp_path, inprocess_daemons):
    def run(tribe, apsis, *, attribute="companyname", apsis_options=None):
        rules = TribeConnector.sandbox_rules()
        rules["fields"] = {**rules["fields"], "Contact.Organization.Name": attribute}
        destination = {**ApsisConnector.sandbox_config(apsis), **(apsis_options or {})}
        config = build_config(str(tmp_path / "state"), TribeConnector.sandbox_config(tribe),
                              destination, rules, _free_port(), _free_port())
        path = tmp_path / "syncd.toml"
        path.write_bytes(tomli_w.dumps(config).encode())
        d = inprocess_daemons(path).start(30)
        return d.daemon, d.client, path, config

    return run


def preflight_of(client) -> dict:
    return client.status()["integrations"][INTEGRATION]["preflight"]


def test_a_full_sync_naming_a_missing_attribute_is_refused_and_status_says_why(accounts,
                                                                                 start):
    tribe, apsis = accounts
    daemon, client, _, _ = start(tribe, apsis)
    found = settled(client, "problems")
    [problem] = found["problems"]
    assert problem.startswith(f"{KEY}: ") and 'did you mean "company"?' in problem
    with pytest.raises(AdminError) as refused:
        client.start_sync(INTEGRATION, confirm=True)
    assert KEY in str(refused.value) and "refused" in str(refused.value)
    assert client.runs(INTEGRATION) == []  # nothing was started
    # the receiver still stores webhooks: a change in Tribe arrives in the inbox
    assert wait_for(lambda: tribe.webhooks())
    tribe.mutate(random.Random(3))
    assert wait_for(lambda: sum(daemon.store.inbox_counts().get(INTEGRATION, {}).values()))
    # fixed in the account: the next start checks again and goes ahead
    apsis.define_attribute("companyname")
    run_id = client.start_sync(INTEGRATION, confirm=True)["run_id"]
    assert wait_for(lambda: client.run(run_id)["status"] != "running")
    assert client.run(run_id)["status"] == "completed"
    assert preflight_of(client)["state"] == "ok"


def test_a_reload_runs_the_preflight_again(accounts, start):
    tribe, apsis = accounts
    daemon, client, path, config = start(tribe, apsis, attribute="company")
    settled(client, "ok")
    config["connections"]["crm"]["labels_nav"] = "LabelAssignment"
    path.write_bytes(tomli_w.dumps(config).encode())
    with capture_logs() as logs:
        assert client.reload()["ok"]
        found = settled(client, "problems")
    logged = [e for e in logs if e["event"] == "preflight.problem" and e["severity"] == "error"]
    assert [e["key"] for e in logged] == ["connections.crm.labels_nav"]
    assert "LabelAssignments" in logged[0]["problem"]
    assert any(line.startswith("connections.crm.labels_nav: ") and "LabelAssignments" in line
               for line in found["problems"])
    with pytest.raises(AdminError, match="connections.crm.labels_nav"):
        client.start_sync(INTEGRATION)


def test_a_connection_error_is_shown_as_such_and_does_not_refuse(accounts, start):
    tribe, apsis = accounts
    daemon, client, _, _ = start(tribe, apsis, attribute="company",
                                 apsis_options={"client_secret": "wrong-secret",
                                                "max_attempts": 1})
    found = settled(client, "connection_error")
    assert found["problems"] == []
    assert found["connection_errors"][0].startswith("connections.marketing: ")
    assert "401" in found["connection_errors"][0]
    assert "wrong-secret" not in str(client.status())
    run_id = client.start_sync(INTEGRATION, confirm=True)["run_id"]  # the run meets it itself
    assert wait_for(lambda: client.run(run_id)["status"] != "running")
    assert "401" in str(client.run(run_id)["errors"])
