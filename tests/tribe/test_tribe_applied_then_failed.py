"""Label writes whose answer is lost after Tribe applied them (the emulator's "applied, then
failed" faults: a 502, a dropped connection, a hang past the client's timeout). A retry
must not set a label twice: under ``duplicate_label_links`` (person-label links are a GAP:
Tribe may well accept a second link for a label already set) a blind second POST would make
a second link, and removing the label later would leave one behind. The connector reads the
person's labels again before another POST, and removes every link of a label."""

from __future__ import annotations

import pytest
from test_tribe_labels import person_with

from syncd.records import Event
from syncd.testing import wait_for

LABEL = "Webinars"


def links_of(emulator, pid: str, label: str) -> int:
    """How many LabelAssignment links give ``pid`` the label ``label`` (raw emulator data)."""
    with emulator.lock:
        store = emulator.store
        return sum(1 for link in store.navs[pid].get("LabelAssignments") or []
                   if link in store.entities
                   and store.entities[store.navs[link]["Label"]]["Name"] == label)


@pytest.mark.parametrize("duplicates", [False, True], ids=["409-on-duplicate", "duplicates"])
@pytest.mark.parametrize("fault", [502, 0, 504], ids=["502", "dropped", "hang"])
def test_a_lost_answer_sets_the_label_once(emulator, make_connector, duplicates, fault):
    connector = make_connector(timeout=0.3)
    emulator.duplicate_label_links = duplicates
    pid = person_with(emulator, "Newsletter", LABEL)["ID"]
    emulator.set_faults(fail_after_next=[fault], fail_after_path="/LabelAssignment",
                        hang_seconds=0.6)
    result = connector.write_consents(pid, {LABEL: True})
    assert result.outcome == "updated", result
    assert emulator.stats()["applied_then_failed"] == 1
    assert links_of(emulator, pid, LABEL) == 1

    def posts():  # a hung answer is logged when its hang ends
        return [s for _, m, p, s in emulator.requests if m == "POST" and "LabelAssignment" in p]

    assert wait_for(lambda: posts() == [fault]), posts()  # the lost one, never a second
    # and the label goes again in one call
    assert connector.write_consents(pid, {LABEL: False}).outcome == "updated"
    assert links_of(emulator, pid, LABEL) == 0
    assert LABEL not in {lab["Name"] for lab in emulator.person(pid)["Labels"]}


def test_a_label_set_twice_is_removed_with_all_its_links(emulator, connector):
    emulator.duplicate_label_links = True
    pid = person_with(emulator, "Newsletter", LABEL)["ID"]
    label_id = next(lab["ID"] for lab in emulator.labels() if lab["Name"] == LABEL)
    session = emulator.api_session()
    for _ in range(2):  # as a second integration, or a user, could
        session.post(f"{emulator.url}/v1/odata/LabelAssignment", json={
            "Relation": {"ID": pid}, "Label": {"ID": label_id}}).raise_for_status()
    assert links_of(emulator, pid, LABEL) == 2
    [record] = connector.read_records([Event(pid)])
    assert LABEL in record.labels
    assert connector.write_consents(pid, {LABEL: False}).outcome == "updated"
    assert links_of(emulator, pid, LABEL) == 0
    [record] = connector.read_records([Event(pid)])
    assert LABEL not in record.labels


def test_the_emulator_switch_allows_a_second_link(emulator):
    pid = person_with(emulator, "Newsletter", LABEL)["ID"]
    label_id = next(lab["ID"] for lab in emulator.labels() if lab["Name"] == LABEL)
    session = emulator.api_session()
    url = f"{emulator.url}/v1/odata/LabelAssignment"
    body = {"Relation": {"ID": pid}, "Label": {"ID": label_id}}
    assert session.post(url, json=body).status_code == 201
    assert session.post(url, json=body).status_code == 409
    emulator.duplicate_label_links = True
    second = session.post(url, json=body)
    assert second.status_code == 201 and links_of(emulator, pid, LABEL) == 2
    session.delete(f"{url}({second.json()['ID']})").raise_for_status()
    assert LABEL in {lab["Name"] for lab in emulator.person(pid)["Labels"]}  # one link left
