"""The real ``syncd run`` as a process against the Tribe and APSIS emulators: crash safety,
signals (SIGKILL, SIGTERM, SIGHUP), the CLI, plugin failures and the sandbox."""

from __future__ import annotations

import json
import signal
import socket
import time

import pytest
from e2e_support import (
    NAME,
    SECRETS,
    differences,
    duplicate_profiles,
    full_sync,
    integration_status,
    matching_persons,
    syncd_cli,
    wait_for,
    wait_inbox_empty,
    wait_run,
    wait_webhooks_registered,
)

FIRSTNAME = "com.apsis1.attributes.firstname"


def rename(tribe, session, person_id: str, name: str) -> None:
    """Change a person's first name through Tribe's API (the emulator then sends a webhook)."""
    r = session.put(f"{tribe.url}/v1/odata/Relation_Person({person_id})",
                    json={"FirstName": name}, timeout=10)
    assert r.status_code < 300, r.text


def create_person(tribe, session, first_name: str) -> str:
    """A new person with a contact that matches the sandbox conditions (CustomerType A), made
    through Tribe's API; returns the person's id."""
    org = tribe.organizations()[0]["ID"]
    r = session.post(f"{tribe.url}/v1/odata/Relationship_Person_Contact_Standard", json={
        "Person": {"FirstName": first_name, "LastName": "E2e",
                   "EmailAddress": f"{first_name.lower()}@private.example"},
        "Relation": {"ID": org}, "EmailAddress": f"{first_name.lower()}@work.example",
        "CustomerType": "A", "IsFormer": False}, timeout=10)
    assert r.status_code == 201, r.text
    person = r.json().get("Person") or {}
    if isinstance(person, dict) and person.get("ID"):
        return person["ID"]
    return next(p["ID"] for p in tribe.persons() if p.get("FirstName") == first_name)


def firstname(apsis, person_id: str) -> str | None:
    return (apsis.snapshot().get(person_id) or {}).get(FIRSTNAME)


def acknowledged(tribe) -> list[dict]:
    deliveries = tribe.deliveries()
    failed = [d for d in deliveries if not d["delivered"]]
    assert not failed, f"webhooks not acknowledged by syncd: {failed[:3]}"
    return deliveries


# -- 1. SIGKILL after acknowledged webhooks ------------------------------------------------------


@pytest.mark.slow
def test_sigkill_after_acknowledged_webhooks_loses_nothing(emulators, setup):
    tribe, apsis = emulators.tribe, emulators.apsis
    # one attempt per APSIS request: a failing APSIS fails a write at once
    path, _, daemon = setup(apsis_options={"max_attempts": 1, "timeout": 5.0})
    client = daemon.start().wait_ready()
    wait_webhooks_registered(tribe, daemon.receiver_port)
    run = full_sync(client)
    assert run["status"] == "completed" and run["created"] > 0, run
    assert differences(path, tribe, apsis) == []

    # APSIS fails everything: what syncd acknowledges can only be in its inbox
    apsis.set_faults(error_rate=1.0)
    session = tribe.api_session()
    renamed = {pid: f"Killed{i:02d}" for i, pid in
               enumerate(matching_persons(tribe, apsis, 30))}
    for pid, name in renamed.items():
        rename(tribe, session, pid, name)
    created = [create_person(tribe, session, f"Newcomer{i}") for i in range(3)]
    session.close()
    assert tribe.wait_deliveries(30), "the Tribe emulator still has webhooks to deliver"
    deliveries = acknowledged(tribe)
    daemon.kill()
    assert len(deliveries) >= len(renamed) + len(created)
    assert all(200 <= d["status"] < 300 for d in deliveries)
    assert not any(firstname(apsis, pid) == name for pid, name in renamed.items()), \
        "a change reached APSIS while it was failing every request"
    assert not any(pid in apsis.snapshot() for pid in created)

    apsis.set_faults(error_rate=0.0)
    client = daemon.start().wait_ready()
    inbox = wait_inbox_empty(client, timeout=60)
    assert inbox.get("dead", 0) == 0, client.events()
    assert {pid: firstname(apsis, pid) for pid in renamed} == renamed
    assert {pid: firstname(apsis, pid) for pid in created} == {
        pid: f"Newcomer{i}" for i, pid in enumerate(created)}
    assert differences(path, tribe, apsis) == []
    assert duplicate_profiles(apsis) == []
    # every delivery of both runs was acknowledged, and the restart re-registered nothing new
    acknowledged(tribe)
    assert len(tribe.webhooks()) == 2
