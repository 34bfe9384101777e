"""Response data and automation tasks: the values and typed capabilities (seed 000).

- A destination that can *read engagement events* (APSIS One's e-mail and SMS event exports)
  implements :class:`EngagementReader`; a source CRM that can *write engagement events*
  (Tribe activities) implements :class:`EngagementWriter`; one that can *create tasks*
  implements :class:`TaskCreator`. The core calls them only through these methods (the
  capabilities ``read_responses``, ``write_responses`` and ``create_tasks``).
- :class:`EngagementEvent` is one event of one profile; its :attr:`~EngagementEvent.dedupe`
  key is ``(correlation_id, type, profile, time)`` hashed: APSIS repeats rows on retries,
  the core remembers what it wrote by this key, and the writer uses it as the external id
  (``ImportId``) of what it creates, so a write whose answer was lost is found, not repeated.
- The pure decisions (which types an integration writes, the subject of an activity, a task
  from an automation call and its config) are functions here, tested without HTTP.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from syncd.records import WriteResult

#: The event types the core knows, ``channel_kind``: e-mail (apis.md 3.6) and SMS (a GAP:
#: the SMS export's path and type names are options of the destination).
EMAIL_TYPES = ("email_sent", "email_delivered", "email_bounced", "email_opened",
               "email_clicked", "email_unsubscribed")
SMS_TYPES = ("sms_delivered", "sms_undelivered", "sms_opened", "sms_clicked")
EVENT_TYPES = EMAIL_TYPES + SMS_TYPES
#: How an event type reads in an activity's subject.
VERBS = {"sent": "sent", "delivered": "delivered", "bounced": "bounced (undelivered)",
         "undelivered": "undelivered", "opened": "opened", "clicked": "clicked",
         "unsubscribed": "unsubscribed"}


@dataclass(frozen=True, slots=True)
class EngagementEvent:
    """One e-mail or SMS event of one profile, as the destination reported it."""

    type: str  # one of EVENT_TYPES
    #: The CRM record id the profile carries ("" when the profile has none: unmatched).
    key: str
    at: str  # ISO-8601 UTC: event_time, or server_time when event_time is 0
    correlation_id: str = ""
    address: str = ""  # e-mail address or phone number
    campaign: str = ""  # the mailing / SMS activity name
    subject: str = ""
    detail: Mapping[str, str] = field(default_factory=dict)  # device, url ...

    @property
    def channel(self) -> str:
        return self.type.split("_", 1)[0]

    @property
    def verb(self) -> str:
        return self.type.split("_", 1)[1]

    @property
    def dedupe(self) -> str:
        """``(correlation_id, type, profile, time)``, hashed to 32 hex characters."""
        profile = self.key or self.address
        raw = "\x1f".join((self.correlation_id, self.type, profile, self.at))
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class EngagementBatch:
    """The answer of one :meth:`EngagementReader.read_engagement` call."""

    #: False: the export is not ready yet (requested, pending, or held by the destination's
    #: limit): call again after ``retry_in`` seconds with the same cursor.
    ready: bool
    events: tuple[EngagementEvent, ...] = ()
    #: The cursor to pass next time once these events are written (None when not ready).
    cursor: str | None = None
    retry_in: float = 0.0
    #: Rows the reader dropped, by reason (``duplicate_rows``, ``rows_without_time`` ...).
    counts: Mapping[str, int] = field(default_factory=dict)
    #: How far behind the export is: seconds between the cursor and now, when known.
    lag: float | None = None


@dataclass(frozen=True, slots=True)
class TaskRequest:
    """A task to create for a record, assigned to an employee (already resolved)."""

    idempotency_key: str
    record_id: str
    subject: str
    description: str = ""
    due: str | None = None  # ISO-8601
    start: str | None = None
    #: The employee id; None: the writer applies ``assignee_rule`` (e.g. the account manager)
    #: and then ``fallback_assignee``.
    assignee: str | None = None
    assignee_rule: str = ""
    fallback_assignee: str = ""


@dataclass(frozen=True, slots=True)
class TaskResult:
    #: "created" | "exists" (an earlier call made it) | "unknown_record" |
    #: "unknown_assignee" | "failed"
    outcome: str
    task_id: str | None = None
    reason: str | None = None
    retryable: bool = False
    assignee: str | None = None


class EngagementReader(Protocol):
    """A destination that reports engagement events (capability ``read_responses``)."""

    def read_engagement(self, cursor: str | None) -> EngagementBatch:
        """One step of reading the events since ``cursor`` (None: since an hour ago). Never
        waits for an export or a limit: answers ``ready=False`` with ``retry_in`` instead."""
        ...


class EngagementWriter(Protocol):
    """A source CRM that records engagement events (capability ``write_responses``)."""

    def write_engagement(self, events: Sequence[EngagementEvent],
                         uncertain: frozenset[str]) -> list[WriteResult]:
        """Write each event on its record; one result per event, keyed by its ``dedupe``.
        ``uncertain`` names events whose earlier write may have been applied (its answer was
        lost, the daemon was killed): look them up first. Outcomes: ``created``,
        ``unchanged`` (it was there), ``skipped`` (no such record), ``failed``."""
        ...


class TaskCreator(Protocol):
    """A source CRM that creates tasks (capability ``create_tasks``)."""

    def create_task(self, task: TaskRequest) -> TaskResult: ...


# -- pure decisions ------------------------------------------------------------------------

def wanted(events: Sequence[EngagementEvent], types: Sequence[str]
           ) -> tuple[list[EngagementEvent], dict[str, int]]:
    """The events of the configured ``types``, once each (by ``dedupe``), oldest first; and
    the counts of what was dropped (``not_mapped``, ``duplicates``)."""
    keep = set(types)
    seen: set[str] = set()
    out: list[EngagementEvent] = []
    dropped = {"not_mapped": 0, "duplicates": 0}
    for event in events:
        if event.type not in keep:
            dropped["not_mapped"] += 1
            continue
        if event.dedupe in seen:
            dropped["duplicates"] += 1
            continue
        seen.add(event.dedupe)
        out.append(event)
    out.sort(key=lambda e: (e.at, e.dedupe))
    return out, dropped


def activity_subject(event: EngagementEvent, template: str) -> str:
    """``{campaign}: e-mail opened`` from ``template`` (``{campaign}``, ``{channel}``,
    ``{event}``, ``{subject}``, ``{address}``)."""
    channel = "SMS" if event.channel == "sms" else "e-mail"
    return fill(template, {"campaign": event.campaign or event.subject or "(no name)",
                           "channel": channel, "event": VERBS.get(event.verb, event.verb),
                           "subject": event.subject, "address": event.address})[:250]


_FIELD = re.compile(r"\{([A-Za-z0-9_.]+)\}")


def fill(template: str, values: Mapping[str, Any]) -> str:
    """``{name}`` replaced by ``values[name]`` ("" when absent); nothing else is evaluated."""
    return _FIELD.sub(lambda m: str(values.get(m.group(1), "") or ""), template)


def due_date(call: Mapping[str, Any], due_days: float, now: datetime | None = None) -> str:
    """The task's due date: the call's ``due`` (ISO-8601 date or time), else ``due_days``
    from now. ValueError for a bad ``due``."""
    raw = call.get("due")
    if raw:
        text = str(raw).replace("Z", "+00:00")
        value = datetime.fromisoformat(text)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    moment = (now or datetime.now(UTC)) + timedelta(days=due_days)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


class BadTaskCall(ValueError):
    """An automation call that cannot make a task (answered 400/422 and recorded)."""


def task_from_call(call: Mapping[str, Any], *, subject: str, description: str,
                   due_days: float, assignee_rule: str, fallback: str) -> TaskRequest:
    """The task an automation call asks for. The call is JSON: ``idempotency_key`` (or
    ``id``), ``contact`` (the CRM record id), optional ``employee``, ``subject``,
    ``description``, ``due`` and any other values the templates name (``{campaign}`` ...)."""
    key = str(call.get("idempotency_key") or call.get("id") or "").strip()
    if not key or len(key) > 200:
        raise BadTaskCall("the call needs an idempotency_key (or id) of 1 to 200 characters")
    record = str(call.get("contact") or call.get("record_id") or "").strip()
    if not record:
        raise BadTaskCall("the call needs `contact`: the CRM id of the contact")
    values = {k: v for k, v in call.items() if isinstance(v, str | int | float)}
    text = str(call.get("subject") or fill(subject, values)).strip()
    if not text:
        raise BadTaskCall("the task has no subject: send `subject` or set task_subject")
    try:
        due = due_date(call, due_days)
    except (TypeError, ValueError):
        raise BadTaskCall("`due` must be an ISO-8601 date or time") from None
    employee = str(call.get("employee") or "").strip() or None
    return TaskRequest(idempotency_key=key, record_id=record, subject=text[:250],
                       description=str(call.get("description") or fill(description, values)),
                       due=due, assignee=employee, assignee_rule=assignee_rule,
                       fallback_assignee=fallback)
