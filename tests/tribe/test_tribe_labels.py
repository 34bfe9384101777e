"""Opt-in labels: when each was set (``Record.label_times``) and ``write_consents`` (labels
set or removed through the API, which fires the person's webhook)."""

from __future__ import annotations

import time
from datetime import datetime

from syncd_tribe.connector import TribeConnector

from syncd.connectors.connector import Capability
from syncd.records import Event


def person_with(emulator, present: str, absent: str) -> dict:
    for person in emulator.persons()[1:]:  # [0] is the API's virtual user
        names = {lab["Name"] for lab in person["Labels"]}
        if present in names and absent not in names:
            return person
    raise AssertionError("the seed has no such person")


def parse(connector, receiver) -> list[Event]:
    parser = TribeConnector.webhook_parser("crm", connector.opts)
    return [e for headers, body in receiver.received for e in parser(headers, body)]


def test_label_times_are_read(emulator, connector, paging):
    page = connector.read_page(None, 500)
    labelled = [r for r in page.records if r.labels]
    assert labelled
    for record in labelled:
        assert set(record.label_times) == set(record.labels)
        assert record.label_times == {
            name: datetime.fromisoformat(when).isoformat().replace("+00:00", "Z")
            for name, when in emulator.label_times(record.id).items()}
        for when in record.label_times.values():
            assert datetime.fromisoformat(when).tzinfo is not None  # comparable with `at`
    [again] = connector.read_records([Event(labelled[0].id)])
    assert again.label_times == labelled[0].label_times


def test_a_label_set_later_has_a_later_time_and_kept_labels_keep_theirs(emulator, connector):
    person = person_with(emulator, "Newsletter", "Webinars")
    before = connector.read_records([Event(person["ID"])])[0]
    time.sleep(0.01)
    result = connector.write_consents(person["ID"], {"Webinars": True})
    assert result.outcome == "updated"
    after = connector.read_records([Event(person["ID"])])[0]
    assert after.label_times["Newsletter"] == before.label_times["Newsletter"]
    assert datetime.fromisoformat(after.label_times["Webinars"]) > \
        datetime.fromisoformat(before.label_times["Newsletter"])
    assert after.modified_at > before.modified_at


def test_write_consents_adds_and_removes_through_the_api(emulator, connector, receiver, paging):
    assert Capability.WRITE_CONSENTS in TribeConnector.capabilities
    connector.ensure_webhook(receiver.url)
    person = person_with(emulator, "Newsletter", "Events")
    pid = person["ID"]

    result = connector.write_consents(pid, {"Newsletter": False, "Events": True})
    assert (result.key, result.outcome, result.reason) == (pid, "updated", None)
    names = {lab["Name"] for lab in emulator.person(pid)["Labels"]}
    assert "Events" in names and "Newsletter" not in names
    assert set(emulator.label_times(pid)) == names
    posts = [r for r in emulator.requests if r[1] == "POST" and "/LabelAssignment" in r[2]]
    deletes = [r for r in emulator.requests if r[1] == "DELETE" and "/LabelAssignment(" in r[2]]
    assert len(posts) == 1 and len(deletes) == 1, "one request per label, through the API"

    # every change fires the person's update webhook, which reads back the new labels
    assert emulator.wait_deliveries(10) and receiver.wait_for(2)
    events = parse(connector, receiver)
    assert {(e.record_id, e.kind, e.entity) for e in events} == {(pid, "changed", "person")}
    assert all(e.data.get("type") == "EntityUpdateMutation" for e in events)
    [record] = connector.read_records(events[:1])
    assert "Events" in record.labels and "Newsletter" not in record.labels
    assert "Events" in record.label_times

    # idempotent: the same call again changes nothing and fires nothing
    delivered = len(receiver.received)
    again = connector.write_consents(pid, {"Newsletter": False, "Events": True})
    assert again.outcome == "unchanged"
    assert emulator.wait_deliveries(10)
    assert len(receiver.received) == delivered


def test_write_consents_unknown_label_fails_and_writes_nothing(emulator, connector):
    person = person_with(emulator, "Newsletter", "Events")
    before = emulator.person(person["ID"])
    result = connector.write_consents(person["ID"], {"Events": True, "No Such Label": True})
    assert result.outcome == "failed" and not result.retryable
    assert "No Such Label" in result.reason and "Events" not in result.reason
    assert emulator.person(person["ID"])["Labels"] == before["Labels"]


def test_write_consents_finds_a_label_created_meanwhile(emulator, connector):
    person = person_with(emulator, "Newsletter", "Events")
    assert connector.write_consents(person["ID"], {"Events": True}).outcome == "updated"
    session = emulator.api_session()
    session.post(f"{emulator.url}/v1/odata/Label", json={"Name": "Partners"}).raise_for_status()
    result = connector.write_consents(person["ID"], {"Partners": True})
    assert result.outcome == "updated"
    assert "Partners" in {lab["Name"] for lab in emulator.person(person["ID"])["Labels"]}


def test_write_consents_on_a_deleted_person_fails_not_retryable(emulator, connector):
    person = person_with(emulator, "Newsletter", "Events")
    emulator.api_session().delete(
        f"{emulator.url}/v1/odata/Relation_Person({person['ID']})").raise_for_status()
    result = connector.write_consents(person["ID"], {"Newsletter": False})
    assert result.outcome == "failed" and not result.retryable


def test_write_consents_5xx_is_retried_then_reported_retryable(emulator, make_connector):
    connector = make_connector(max_attempts=2)
    person = person_with(emulator, "Newsletter", "Events")
    connector.write_consents(person["ID"], {})  # nothing asked: no request
    emulator.set_faults(fail_next=[503])
    assert connector.write_consents(person["ID"], {"Events": True}).outcome == "updated"
    emulator.set_faults(error_rate=1.0)
    result = connector.write_consents(person["ID"], {"Events": False})
    emulator.set_faults(error_rate=0.0)
    assert result.outcome == "failed" and result.retryable


def test_without_links_labels_are_bound_as_a_list(emulator, make_connector, receiver):
    """``labels_nav = "Labels"`` (straight to the labels): same contract, no label times."""
    connector = make_connector(labels_nav="Labels", label_link_label_nav="")
    connector.ensure_webhook(receiver.url)
    person = person_with(emulator, "Newsletter", "Events")
    [record] = connector.read_records([Event(person["ID"])])
    assert "Newsletter" in record.labels and record.label_times == {}
    result = connector.write_consents(person["ID"], {"Newsletter": False, "Events": True})
    assert result.outcome == "updated"
    names = {lab["Name"] for lab in emulator.person(person["ID"])["Labels"]}
    assert "Events" in names and "Newsletter" not in names
    assert connector.write_consents(person["ID"], {"Events": True}).outcome == "unchanged"
    assert emulator.wait_deliveries(10) and receiver.wait_for(1)
    assert {e.record_id for e in parse(connector, receiver)} == {person["ID"]}


def test_emulator_label_links_stay_consistent(emulator):
    """Binding ``Labels`` and POST/DELETE of links are two views of one state."""
    person = person_with(emulator, "Newsletter", "Events")
    pid = person["ID"]
    labels = {lab["Name"]: lab["ID"] for lab in emulator.labels()}
    session = emulator.api_session()
    base = f"{emulator.url}/v1/odata"
    times = emulator.label_times(pid)
    r = session.post(f"{base}/LabelAssignment", json={"Relation": {"ID": pid},
                                                      "Label": {"ID": labels["Events"]}})
    assert r.status_code == 201
    link = r.json()
    dup = session.post(f"{base}/LabelAssignment", json={"Relation": {"ID": pid},
                                                        "Label": {"ID": labels["Events"]}})
    assert dup.status_code == 409
    assert session.put(f"{base}/Relation_Person({pid})",
                       json={"LabelAssignments": []}).status_code == 400
    data = session.get(f"{base}/Relation_Person({pid})", params={
        "$select": "ID", "$expand": "LabelAssignments($select=ID,CreationDate;"
                                    "$expand=Label($select=Name))"}).json()
    assert {a["Label"]["Name"]: a["CreationDate"] for a in data["LabelAssignments"]} == \
        {**times, "Events": link["CreationDate"]}
    # binding the list keeps the links of kept labels (and their times)
    keep = [{"ID": labels["Events"]}]
    session.put(f"{base}/Relation_Person({pid})", json={"Labels": keep}).raise_for_status()
    assert emulator.label_times(pid) == {"Events": link["CreationDate"]}
    assert session.delete(f"{base}/LabelAssignment({link['ID']})").status_code == 204
    assert emulator.person(pid)["Labels"] == [] and emulator.label_times(pid) == {}
