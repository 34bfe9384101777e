"""Response data and tasks in Tribe: the emulator's activity sets refuse a create without
their required fields (400), and the connector's ``write_engagement`` / ``create_task``
against every paging setting (the lookups page), with lost answers settled by ImportId."""

from __future__ import annotations

from syncd.engagement import EngagementEvent, TaskRequest

EVENTS = "/v1/odata/Activity_Event"
TASKS = "/v1/odata/Activity_Task"


def test_activities_need_their_required_fields(emulator):
    session = emulator.api_session()
    contact = emulator.contacts()[0]["ID"]
    employee = emulator.employee_id
    r = session.post(emulator.url + TASKS, json={"Subject": "x",
                                                 "Relationship": {"ID": contact}})
    assert r.status_code == 400 and "StartDate, Assignee required" in r.text
    r = session.post(emulator.url + TASKS, json={
        "Subject": "Call", "StartDate": "2026-01-01T09:00:00Z", "Assignee": {"ID": employee},
        "Relationship": {"ID": contact}})
    assert r.status_code == 201 and r.json()["_Type"] == "Activity.Task"
    assert session.post(emulator.url + EVENTS, json={"Subject": "x"}).status_code == 400
    assert session.post(emulator.url + EVENTS, json={
        "Subject": "x", "StartDate": "2026-01-01T09:00:00Z"}).status_code == 201
    # a task's assignee must be an employee
    person = emulator.persons()[0]["ID"]
    r = session.post(emulator.url + TASKS, json={
        "Subject": "Call", "StartDate": "2026-01-01T09:00:00Z", "Assignee": {"ID": person},
        "Relationship": {"ID": contact}})
    assert r.status_code == 400


def events_for(person: str, n: int = 3) -> list[EngagementEvent]:
    return [EngagementEvent("email_opened", person, f"2026-01-0{i + 1}T10:00:00.000Z",
                            correlation_id=f"c{i}", campaign="Spring", subject="Hello")
            for i in range(n)]


def test_write_engagement_once_each(emulator, make_connector, paging):
    conn = make_connector()
    person = emulator.contacts()[0]["Person"]["ID"]
    events = [*events_for(person),
              EngagementEvent("sms_clicked", "no-such-person", "2026-01-01T10:00:00.000Z")]
    results = conn.write_engagement(events, frozenset())
    assert [r.outcome for r in results] == ["created", "created", "created", "skipped"]
    made = emulator.activities()
    assert len(made) == 3
    assert {a["Subject"] for a in made} == {"Spring: e-mail opened"}
    assert {a["Relationship"]["ID"] for a in made} == {emulator.contacts()[0]["ID"]}
    # uncertain ones are looked up, not written again
    again = conn.write_engagement(events[:3], frozenset(e.dedupe for e in events[:3]))
    assert [r.outcome for r in again] == ["unchanged"] * 3
    assert len(emulator.activities()) == 3


def test_a_lost_answer_is_settled_by_the_import_id(emulator, make_connector):
    conn = make_connector()
    person = emulator.contacts()[0]["Person"]["ID"]
    emulator.faults.fail_after_path = "Activity_Event"
    emulator.faults.fail_after_next = [502, 0]
    results = conn.write_engagement(events_for(person, 2), frozenset())
    assert [r.outcome for r in results] == ["unchanged", "unchanged"]
    assert len(emulator.activities()) == 2


def test_summary_fields_on_the_person(emulator, make_connector):
    conn = make_connector(response_summary_fields={"email_opened": "BirthDate"})
    person = emulator.contacts()[0]["Person"]["ID"]
    conn.write_engagement(events_for(person), frozenset())
    assert emulator.person(person)["BirthDate"] == "2026-01-03T10:00:00.000Z"


def test_create_task_rules(emulator, make_connector):
    conn = make_connector()
    contact = emulator.contacts()[0]
    person = contact["Person"]["ID"]
    manager = emulator.add_employee("Anna", "Manager")
    emulator.set_account_manager(contact["ID"], manager)

    def task(key, **kw):
        return TaskRequest(key, kw.pop("record", person), "Call", due="2026-02-01T00:00:00Z",
                           assignee_rule=kw.pop("rule", "account_manager"), **kw)

    made = conn.create_task(task("k1"))
    assert made.outcome == "created" and made.assignee == manager
    assert conn.create_task(task("k1")).outcome == "exists"
    assert conn.create_task(task("k2", record=contact["ID"])).assignee == manager
    assert conn.create_task(task("k3", record="nope")).outcome == "unknown_record"
    assert conn.create_task(task("k4", assignee="nope")).outcome == "unknown_assignee"
    assert conn.create_task(task("k5", rule="none")).outcome == "unknown_assignee"
    fallback = conn.create_task(task("k6", rule="none",
                                     fallback_assignee=emulator.employee_id))
    assert fallback.outcome == "created" and fallback.assignee == emulator.employee_id
    assert len(emulator.tasks()) == 3


def test_preflight_checks_what_response_data_and_tasks_write(emulator, make_connector):
    from syncd.records import Need, NeedKind, SchemaNeeds

    needs = SchemaNeeds("source", (
        Need(NeedKind.RESPONSES, "response_events", "integrations.x.response_events"),
        Need(NeedKind.TASKS, "account_manager", "integrations.x.task_assignee_rule")))
    assert make_connector().check_schema(needs) == []
    wrong = make_connector(response_activity_set="Activity_Evnt",
                           response_activity_nav="Relationshp",
                           account_manager_nav="AccountManagr")
    problems = {p.key.rsplit(".", 1)[-1]: p for p in wrong.check_schema(needs)}
    assert problems["response_activity_set"].suggestion == "Activity_Event"
    assert problems["account_manager_nav"].suggestion == "AccountManager"
    assert {p.severity for p in problems.values()} == {"warning"}  # contact sync goes on
    # nothing is checked for an integration that uses neither
    assert wrong.check_schema(SchemaNeeds("source", ())) == []
