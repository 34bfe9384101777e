"""Tasks from automation against the emulators: the APSIS emulator's automation-call sender
calls the daemon's task endpoint; tasks land in the Tribe emulator's Activity_Task (which
refuses a task without its required fields), once per idempotency key."""

from __future__ import annotations

import requests
from responses_support import NAME, TASK_SECRET
from syncd_apsis.emulator import ApsisEmulator

send = ApsisEmulator.send_automation_call


def url(world) -> str:
    return f"{world.receiver}/tasks/{NAME}"


def contact_of(world, person_id: str) -> str:
    contacts = [c for c in world.tribe.contacts()
                if (c.get("Person") or {}).get("ID") == person_id]
    return max(contacts, key=lambda c: (not c.get("IsFormer"), c["LastMutationDate"],
                                        c["ID"]))["ID"]


def test_task_for_the_account_manager_once_per_key(world):
    person = world.synced[0]
    contact = contact_of(world, person)
    manager = world.tribe.add_employee("Anna", "Manager")
    world.tribe.set_account_manager(contact, manager)
    call = {"idempotency_key": "flow-1-run-7", "contact": person, "campaign": "Spring",
            "description": "Called about the spring offer", "due": "2026-12-01"}
    status, body = send(url(world), TASK_SECRET, call)
    assert status == 201, body
    tasks = world.tribe.tasks()
    assert len(tasks) == 1
    task = tasks[0]
    assert task["Subject"] == "Follow up: Spring"  # the config's template
    assert task["Description"] == "Called about the spring offer"
    assert task["EndDate"].startswith("2026-12-01")
    assert task["Assignee"]["ID"] == manager and body["assignee"] == manager
    assert body["task_id"] == task["ID"]
    # the flow retries the same call: no second task
    status, again = send(url(world), TASK_SECRET, call)
    assert status == 200 and again["task_id"] == task["ID"]
    assert len(world.tribe.tasks()) == 1
    # the call is a run of kind task in `syncd runs`, with its count
    [run] = [r for r in world.admin.runs(NAME) if r["kind"] == "task"]
    assert (run["status"], run["created"], run["cursor"]) == ("completed", 1, "flow-1-run-7")
    assert world.admin.run(run["id"])["counts"] == {"task_created": 1}


def test_employee_from_the_call_and_a_lost_answer(world):
    person = world.synced[1]
    employee = world.tribe.add_employee("Bert", "Sales")
    # the task POST is applied, then its answer is lost (500): the retried call finds it
    world.tribe.faults.fail_after_next = [500]
    world.tribe.faults.fail_after_path = "Activity_Task"
    call = {"idempotency_key": "flow-2", "contact": person, "employee": employee,
            "subject": "Call back"}
    status, body = send(url(world), TASK_SECRET, call)
    assert world.tribe.stats()["applied_then_failed"] == 1
    assert status in (200, 201, 503), body
    if status == 503:  # the CRM's answer was lost: the flow calls again
        status, body = send(url(world), TASK_SECRET, call)
    assert status in (200, 201), body
    tasks = world.tribe.tasks()
    assert len(tasks) == 1 and tasks[0]["Subject"] == "Call back"
    assert tasks[0]["Assignee"]["ID"] == employee
    # a call arriving while its key is known and created: no new POST to Tribe at all
    def posts() -> int:
        return sum(1 for _, method, path, _ in list(world.tribe.requests)
                   if method == "POST" and "Activity_Task" in path)

    before = posts()
    send(url(world), TASK_SECRET, call)
    assert posts() == before


def test_bad_calls_get_a_clear_4xx_and_are_recorded(world):
    person = world.synced[2]
    contact = contact_of(world, person)
    world.tribe.set_account_manager(contact, None)
    cases = [
        ({"idempotency_key": "u1", "contact": "00000000-dead-4000-8000-000000000000"},
         422, "no person or contact"),
        ({"idempotency_key": "u2", "contact": person,
          "employee": "00000000-beef-4000-8000-000000000000"}, 422, "no employee"),
        ({"idempotency_key": "u3", "contact": person}, 422, "task_fallback_employee"),
        ({"contact": person}, 400, "idempotency_key"),
        ({"idempotency_key": "u5"}, 400, "contact"),
        ({"idempotency_key": "u6", "contact": person, "due": "next week"}, 400, "due"),
    ]
    for call, want, text in cases:
        status, body = send(url(world), TASK_SECRET, call)
        assert status == want and text in body["error"], (call, status, body)
    assert world.tribe.tasks() == []
    status, body = send(url(world), "wrong-secret", cases[0][0])
    assert status == 401
    r = requests.post(url(world), data=b"[1, 2", timeout=5,
                      headers={"Authorization": f"Bearer {TASK_SECRET}"})
    assert r.status_code == 400
    r = requests.post(f"{world.receiver}/tasks/nope", json={}, timeout=5,
                      headers={"Authorization": f"Bearer {TASK_SECRET}"})
    assert r.status_code == 404
    # recorded, and listed by `syncd events list`
    listed = {e["id"]: e for e in world.admin.events(failed=True)}
    for key in ("u1", "u2", "u3", "u5", "u6"):
        assert f"task:{key}" in listed, listed.keys()
    assert "no employee" in listed["task:u2"]["error"]
    assert listed["task:u1"]["kind"] == "task" and listed["task:u1"]["status"] == "dead"
    # each refused call is a run of kind task, with the reason for its record
    runs = {r["cursor"]: r for r in world.admin.runs(NAME, 50) if r["kind"] == "task"}
    assert runs["u2"]["status"] == "rejected" and runs["u2"]["failed"] == 1
    [error] = world.admin.run(runs["u2"]["id"])["errors"]
    assert error["record_id"] == person and "no employee" in error["reason"]
    # a repeated bad call is answered the same, from the record
    status, body = send(url(world), TASK_SECRET, cases[0][0])
    assert status == 422 and "no person or contact" in body["error"]


def test_fallback_employee_and_secret_never_in_answers(start):
    world = start({"task_assignee_rule": "none",
                   "task_fallback_employee": "00000000-0000-4000-8000-000000000004"})
    status, body = send(url(world), TASK_SECRET,
                        {"idempotency_key": "fb-1", "contact": world.synced[0]})
    assert status == 201, body
    assert world.tribe.tasks()[0]["Assignee"]["ID"] == "00000000-0000-4000-8000-000000000004"
    assert TASK_SECRET not in str(world.admin.status())
