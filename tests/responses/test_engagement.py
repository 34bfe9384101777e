"""The pure decisions of response data and tasks (syncd.engagement)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from syncd.engagement import (
    BadTaskCall,
    EngagementEvent,
    activity_subject,
    fill,
    task_from_call,
    wanted,
)


def ev(type="email_opened", key="p1", at="2026-01-01T10:00:00.000Z", cid="c1", **kw):
    return EngagementEvent(type, key, at, correlation_id=cid, **kw)


def test_dedupe_key_is_correlation_type_profile_time():
    base = ev()
    assert base.dedupe == ev().dedupe
    for other in (ev(cid="c2"), ev(type="email_clicked"), ev(key="p2"),
                  ev(at="2026-01-01T10:00:00.001Z")):
        assert other.dedupe != base.dedupe
    # a profile without a CRM id is told apart by its address
    assert ev(key="", address="a@x").dedupe != ev(key="", address="b@x").dedupe


def test_wanted_keeps_the_mapped_types_once_oldest_first():
    events = [ev(at="2026-01-02T00:00:00.000Z"), ev(), ev(), ev(type="email_sent")]
    kept, dropped = wanted(events, ["email_opened"])
    assert [e.at for e in kept] == ["2026-01-01T10:00:00.000Z", "2026-01-02T00:00:00.000Z"]
    assert dropped == {"not_mapped": 1, "duplicates": 1}


def test_subject_and_templates():
    assert activity_subject(ev(campaign="Spring"), "{campaign}: {channel} {event}") == \
        "Spring: e-mail opened"
    assert activity_subject(ev("sms_undelivered"), "{channel} {event} ({campaign})") == \
        "SMS undelivered ((no name))"
    assert fill("Hi {name}, {missing}{x.y}", {"name": "Jan", "x.y": 1}) == "Hi Jan, 1"
    assert fill("{__class__}", {}) == ""  # nothing but plain names is looked up


def call(**kw):
    return {"idempotency_key": "k", "contact": "c", **kw}


def opts(**kw):
    return {"subject": "Follow up: {campaign}", "description": "From {flow}", "due_days": 2,
            "assignee_rule": "account_manager", "fallback": "", **kw}


def test_task_from_a_call():
    task = task_from_call(call(campaign="Spring", flow="Welcome", employee="e1"), **opts())
    assert (task.subject, task.description, task.assignee) == \
        ("Follow up: Spring", "From Welcome", "e1")
    due = datetime.fromisoformat(task.due.replace("Z", "+00:00"))
    assert 1.9 < (due - datetime.now(UTC)).total_seconds() / 86400 < 2.1
    given = task_from_call(call(subject="Call", description="Now", due="2026-12-01"), **opts())
    assert (given.subject, given.description, given.due) == \
        ("Call", "Now", "2026-12-01T00:00:00Z")


@pytest.mark.parametrize("bad, text", [
    ({"contact": "c"}, "idempotency_key"),
    ({"idempotency_key": "x" * 201, "contact": "c"}, "idempotency_key"),
    ({"idempotency_key": "k"}, "contact"),
    (call(due="soon"), "due"),
])
def test_bad_calls(bad, text):
    with pytest.raises(BadTaskCall, match=text):
        task_from_call(bad, **opts())


def test_no_subject_at_all():
    with pytest.raises(BadTaskCall, match="subject"):
        task_from_call(call(), **opts(subject=""))
