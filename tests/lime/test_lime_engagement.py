"""Response data and tasks in Lime: history objects per event and todo objects per task call,
once each (the external id property), against the Lime emulator."""

from __future__ import annotations

from syncd.engagement import EngagementEvent, TaskRequest


def person(emulator) -> str:
    return str(min(emulator.store.objects["person"]))


def coworker(emulator) -> str:
    return str(min(emulator.store.objects["coworker"]))


def events(pid: str, n: int = 3) -> list[EngagementEvent]:
    return [EngagementEvent("email_clicked", pid, f"2026-01-0{i + 1}T10:00:00.000Z",
                            correlation_id=f"c{i}", campaign="Spring") for i in range(n)]


def test_history_once_per_event(emulator, connector):
    pid = person(emulator)
    batch = [*events(pid), EngagementEvent("sms_opened", "999999", "2026-01-01T10:00:00Z")]
    results = connector.write_engagement(batch, frozenset())
    assert [r.outcome for r in results] == ["created"] * 3 + ["skipped"]
    history = list(emulator.store.objects["history"].values())
    assert len(history) == 3
    assert {h["note"] for h in history} == {"Spring: e-mail clicked"}
    assert {h["person"] for h in history} == {int(pid)}
    assert {h["type"] for h in history} == {"email_clicked"}
    again = connector.write_engagement(batch[:3], frozenset(e.dedupe for e in batch[:3]))
    assert [r.outcome for r in again] == ["unchanged"] * 3
    assert len(emulator.store.objects["history"]) == 3


def test_a_lost_answer_is_found_by_the_external_id(emulator, connector):
    emulator.faults.fail_after_path = "/history/"
    emulator.faults.fail_after_next = [500]
    [result] = connector.write_engagement(events(person(emulator), 1), frozenset())
    assert result.outcome == "unchanged"
    assert len(emulator.store.objects["history"]) == 1


def test_todo_from_an_automation_call(emulator, connector):
    pid = person(emulator)
    task = TaskRequest("flow-1", pid, "Call back", description="About spring",
                       due="2026-02-01T00:00:00Z", assignee=coworker(emulator))
    made = connector.create_task(task)
    assert made.outcome == "created" and made.assignee == coworker(emulator)
    [todo] = emulator.store.objects["todo"].values()
    assert (todo["subject"], todo["person"], todo["coworker"]) == \
        ("Call back", int(pid), int(coworker(emulator)))
    assert connector.create_task(task).outcome == "exists"
    assert connector.create_task(TaskRequest("k2", "999999", "x", assignee=coworker(emulator))
                                 ).outcome == "unknown_record"
    assert connector.create_task(TaskRequest("k3", pid, "x", assignee="424242")
                                 ).outcome == "unknown_assignee"
    fallback = connector.create_task(TaskRequest("k4", pid, "x", assignee_rule="none",
                                                 fallback_assignee=coworker(emulator)))
    assert fallback.outcome == "created"
    assert len(emulator.store.objects["todo"]) == 2


def test_preflight_checks_history_and_todo(emulator, make_connector):
    from syncd.records import Need, NeedKind, SchemaNeeds

    needs = SchemaNeeds("source", (
        Need(NeedKind.RESPONSES, "response_events", "integrations.x.response_events"),
        Need(NeedKind.TASKS, "none", "integrations.x.task_assignee_rule")))
    assert make_connector().check_schema(needs) == []
    wrong = make_connector(history_limetype="histroy", todo_due_property="due",
                           external_id_property="extid")
    problems = {p.key.rsplit(".", 1)[-1]: p for p in wrong.check_schema(needs)}
    assert problems["history_limetype"].suggestion == "history"
    assert problems["todo_due_property"].suggestion == "duedate"
    assert "external_id_property" in problems
    assert {p.severity for p in problems.values()} == {"warning"}  # contact sync goes on
    assert wrong.check_schema(SchemaNeeds("source", ())) == []
