"""Issue 7.2 through the real daemon: it tells the Tribe connector what the integration's
rules need, at start and on reload, so that an account without the guessed label navigation
(``LabelAssignments``) syncs fully and in real time when no consent or selection mapping uses
labels; a reload that adds a consent mapping makes reads expand the labels."""

from __future__ import annotations

import signal

import pytest
from e2e_support import (
    differences,
    full_sync,
    matching_in_tribe,
    wait_for,
    wait_inbox_empty,
    wait_webhooks_registered,
    write_config,
)

FIRSTNAME = "com.apsis1.attributes.firstname"


@pytest.mark.slow
def test_no_label_expand_without_label_mappings_then_labels_after_a_reload(emulators, setup):
    tribe, apsis = emulators.tribe, emulators.apsis
    expands: list[tuple[str, str, int]] = []
    tribe.observers.append(lambda request, status: expands.append(
        (request.path.rsplit("/", 1)[-1].split("(")[0], request.arg("$expand") or "", status)))
    tribe.label_navs = ["Labels"]  # this account has no LabelAssignments
    path, config, daemon = setup(integration={"consents": [], "selections": {}})
    client = daemon.start().wait_ready()
    wait_webhooks_registered(tribe, daemon.receiver_port)
    run = full_sync(client)
    assert run["status"] == "completed" and run["created"] > 0, run
    synced = list(expands)
    tribe.label_navs = ["Labels", "LabelAssignments"]  # for the test's own full comparison
    assert differences(path, tribe, apsis) == []
    tribe.label_navs = ["Labels"]
    expands[:] = synced

    pid = matching_in_tribe(tribe, 1)[0]
    session = tribe.api_session()
    session.put(f"{tribe.url}/v1/odata/Relation_Person({pid})",
                json={"FirstName": "NoLabelsNeeded"}, timeout=10).raise_for_status()
    wait_for(lambda: (apsis.snapshot().get(pid) or {}).get(FIRSTNAME) == "NoLabelsNeeded", 20,
             "the webhook's change to arrive in APSIS")
    assert wait_inbox_empty(client).get("dead", 0) == 0
    persons = [(e, s) for what, e, s in expands if what == "Relation_Person"]
    assert persons and all(s == 200 and "Label" not in e for e, s in persons), persons

    # a consent mapping added by a reload: reads expand the labels from then on
    tribe.label_navs = ["Labels", "LabelAssignments"]
    config["integrations"]["sandbox"]["consents"] = [
        {"label": "Newsletter", "topic": "com.apsis1.topics.newsletter", "channel": "email"}]
    write_config(path, config)
    expands.clear()
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: "reload.applied" in [e["event"] for e in daemon.log_events()], 15,
             "the reload to be applied")
    session.put(f"{tribe.url}/v1/odata/Relation_Person({pid})",
                json={"FirstName": "LabelsNow"}, timeout=10).raise_for_status()
    session.close()
    wait_for(lambda: (apsis.snapshot().get(pid) or {}).get(FIRSTNAME) == "LabelsNow", 20,
             "the change after the reload to arrive in APSIS")
    assert any(what == "Relation_Person" and e.startswith("LabelAssignments(")
               for what, e, _ in expands), expands
