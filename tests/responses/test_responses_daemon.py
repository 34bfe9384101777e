"""Response data against the emulators, with the real daemon in-process: every event type
lands once on the person's contact in Tribe; a repeated export, a retried run, duplicate
correlation ids and lost answers duplicate nothing; unknown addresses are counted."""

from __future__ import annotations

from collections import Counter

from responses_support import NAME

EMAIL = ("SENT", "DELIVERED", "BOUNCED", "OPENED", "CLICKED")
SMS = ("DELIVERED", "UNDELIVERED", "OPENED", "CLICKED")


def contact_of(world, person_id: str) -> str:
    contacts = [c for c in world.tribe.contacts()
                if (c.get("Person") or {}).get("ID") == person_id]
    return max(contacts, key=lambda c: (not c.get("IsFormer"), c["LastMutationDate"],
                                        c["ID"]))["ID"]


def activities(world) -> list[dict]:
    return world.tribe.activities("Activity_Event")


def make_events(world, persons: list[str]) -> Counter:
    """Every e-mail and SMS type for each person; returns the expected (person, type) counts."""
    expected: Counter = Counter()
    for pid in persons:
        for kind in EMAIL:
            world.apsis.record_event(pid, kind)
            expected[(pid, f"email_{kind.lower()}")] += 1
        world.apsis.unsubscribe(pid, "com.apsis1.topics.newsletter")
        expected[(pid, "email_unsubscribed")] += 1
        for kind in SMS:
            world.apsis.record_sms_event(pid, kind)
            expected[(pid, f"sms_{kind.lower()}")] += 1
    return expected


def landed(world) -> Counter:
    """(person, type) of every activity, read back from its ImportId's event and link."""
    by_contact = {c["ID"]: (c.get("Person") or {}).get("ID") for c in world.tribe.contacts()}
    out: Counter = Counter()
    for activity in activities(world):
        person = by_contact[(activity.get("Relationship") or {}).get("ID")]
        kind = activity["Description"].split(" at ")[0].lower().replace("e-mail ", "email_") \
            .replace("sms ", "sms_")
        out[(person, kind)] += 1
    return out


def test_every_event_type_lands_once(world):
    persons = world.synced[:3]
    expected = make_events(world, persons)
    run = world.run_responses()
    assert run["status"] == "completed", run
    assert landed(world) == expected
    # each on the person's contact relationship, with subject and date from the event
    activity = activities(world)[0]
    assert activity["Subject"].startswith("Sandbox")
    assert activity["StartDate"].endswith("Z") and activity["ImportId"].startswith("syncd-")
    assert {a["Relationship"]["ID"] for a in activities(world)} == \
        {contact_of(world, p) for p in persons}
    counts = run["counts"]
    assert counts["email_opened"] == 3 and counts["sms_undelivered"] == 3
    assert run["created"] == sum(expected.values())

    # a repeated export (the next run reads the overlap again) writes nothing twice
    world.apsis.record_event(persons[0], "OPENED")
    expected[(persons[0], "email_opened")] += 1
    again = world.run_responses()
    assert again["status"] == "completed"
    assert landed(world) == expected
    assert again["created"] == 1 and again["counts"]["already_written"] >= 1


def test_duplicate_rows_zero_times_and_unknown_addresses(world):
    pid = world.synced[0]
    world.apsis.record_event(pid, "CLICKED", duplicate=True, zero_time=True)
    world.apsis.record_unknown("stranger@example.org", "OPENED")
    world.apsis.record_unknown("other@example.org", "CLICKED")
    run = world.run_responses()
    assert run["status"] == "completed", run
    assert landed(world) == Counter({(pid, "email_clicked"): 1})
    assert run["counts"]["duplicate_rows"] == 1
    assert run["counts"]["unmatched"] == 2
    # event_time 0: the activity's date is the server time
    event = next(e for e in world.apsis.email_events if e["_crm_id"] == pid)
    assert event["event_time"] == 0 and activities(world)[0]["StartDate"]


def test_retried_run_after_lost_answers_duplicates_nothing(world):
    persons = world.synced[:2]
    expected = make_events(world, persons)
    # three activity POSTs are applied, then answered 500 / dropped / 502
    world.tribe.faults.fail_after_next = [500, 0, 502]
    world.tribe.faults.fail_after_path = "Activity_Event"
    first = world.run_responses()
    assert world.tribe.stats()["applied_then_failed"] == 3
    second = world.run_responses() if first["failed"] else first
    assert second["status"] == "completed" and not second.get("error"), second
    assert landed(world) == expected  # nothing lost, nothing twice
    store = world.daemon.store
    assert store.response_count(NAME, "sending") == 0


def test_cursor_stays_until_written(world):
    pid = world.synced[0]
    world.apsis.record_event(pid, "OPENED")
    cursor = world.daemon.store.cursor(NAME, "responses")
    world.tribe.faults.fail_next = [503] * 40  # the CRM is down for this run
    run = world.run_responses()
    assert (run["status"] == "failed" and "503" in run["error"]) or "fault" in run["error"]
    assert world.daemon.store.cursor(NAME, "responses") == cursor  # not moved
    world.tribe.faults.fail_next = []
    run = world.run_responses()
    assert run["status"] == "completed" and run["created"] == 1
    assert world.daemon.store.cursor(NAME, "responses") != cursor
    assert landed(world) == Counter({(pid, "email_opened"): 1})


def test_status_shows_next_run_and_export_lag(world):
    world.run_responses()
    status = world.admin.status()
    r = status["integrations"][NAME]["responses"]
    assert r["next_run"] and r["export_lag"] is not None and r["export_lag"] < 60
    assert r["last_run"]["status"] == "completed"
    assert any(j["id"] == f"{NAME}:responses" and j["schedule"] == "every 900 s"
               for j in status["jobs"])
