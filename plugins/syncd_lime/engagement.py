"""Response data and automation tasks in Lime CRM (a mixin of
:class:`syncd_lime.connector.LimeConnector`).

Response data (``write_engagement``): each event becomes a history-style object
(``history_limetype``, default ``history``: Lime's usual history limetype; its properties
are app-specific, apis.md 2.2 [INFER], hence options) with the note (``history_note``
template), the date (``history_date_property``), the type (``history_type_property``, the
event type, e.g. ``email_opened``) and the person relation (``history_person_relation``).
Lime documents no external id: ``external_id_property`` (default ``externalid``, a text
property the limetype must have) holds ``syncd-<dedupe key>``; an ``uncertain`` event is
looked up by it (a list filtered on that property, apis.md 2.2) before it is written, and a
POST whose answer was lost is settled by the same lookup. An event of a person that does
not exist is ``skipped``.

Tasks (``create_task``): a ``todo``-style object (``todo_limetype``) with subject,
description, due date, the person and the coworker (``todo_coworker_relation``); the
idempotency key (hashed) in ``external_id_property``: a key seen before answers ``exists``.
The assignee is the call's coworker id, else the person's company's coworker (the rule
``account_manager``: ``company_coworker_relation``), else the fallback; an id that is no
coworker is ``unknown_assignee``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from structlog.typing import FilteringBoundLogger

from syncd.plugin import (
    EngagementEvent,
    NeedKind,
    Option,
    RemoteError,
    TaskRequest,
    TaskResult,
    WriteResult,
    activity_subject,
)

if TYPE_CHECKING:
    from syncd_lime.client import LimeClient

OPTIONS: tuple[Option, ...] = (
    Option("history_limetype", str, "history",
           "The limetype response data is written to, one object per event."),
    Option("history_note", str, "{campaign}: {channel} {event}",
           "Template of its note ({campaign}, {channel}, {event}, {subject}, {address})."),
    Option("history_note_property", str, "note", "Its note (text) property."),
    Option("history_date_property", str, "date", "Its date (time) property."),
    Option("history_type_property", str, "type",
           "Its type property, set to the event type (e.g. email_opened); \"\": not set."),
    Option("history_person_relation", str, "person", "Its relation to the person."),
    Option("todo_limetype", str, "todo", "The limetype tasks from automation are created in."),
    Option("todo_subject_property", str, "subject", "The todo's subject property."),
    Option("todo_description_property", str, "description",
           "The todo's description property."),
    Option("todo_due_property", str, "duedate", "The todo's due date property."),
    Option("todo_person_relation", str, "person", "The todo's relation to the person."),
    Option("todo_coworker_relation", str, "coworker",
           "The todo's relation to the coworker it is assigned to."),
    Option("company_coworker_relation", str, "coworker",
           "The company's responsible coworker, for the task_assignee_rule account_manager."),
    Option("external_id_property", str, "externalid",
           "A text property of the history and todo limetypes that holds syncd's key of what "
           "it wrote, so a retried write is found instead of repeated (Lime documents no "
           "external id)."),
)


def check_engagement(c: Any) -> None:
    """Preflight (a :class:`syncd_lime.schema._Checker` ``c``): the limetypes, properties and
    relations response data and tasks write, when an integration uses them. Warnings: they
    stop response data or tasks, not the contact sync a full sync does."""
    before = len(c.problems)
    _check_engagement(c)
    c.problems[before:] = [dataclasses.replace(p, severity="warning")
                           for p in c.problems[before:]]


def _check_engagement(c: Any) -> None:
    o = c.opts
    person = o["person_limetype"]
    if c.needs.of(NeedKind.RESPONSES):
        props = c.props("history_limetype")
        if props is not None:
            owner = o["history_limetype"]
            for option in ("history_note_property", "history_date_property",
                           "history_type_property", "external_id_property"):
                if o[option]:
                    c.prop(props, o[option], c.key(option), owner)
            c.prop(props, o["history_person_relation"], c.key("history_person_relation"),
                   owner, "relation", person)
    tasks = c.needs.of(NeedKind.TASKS)
    if tasks:
        props = c.props("todo_limetype")
        if props is not None:
            owner = o["todo_limetype"]
            for option in ("todo_subject_property", "todo_description_property",
                           "todo_due_property", "external_id_property"):
                c.prop(props, o[option], c.key(option), owner)
            c.prop(props, o["todo_person_relation"], c.key("todo_person_relation"), owner,
                   "relation", person)
            c.prop(props, o["todo_coworker_relation"], c.key("todo_coworker_relation"),
                   owner, "relation")
        if any(n.name == "account_manager" for n in tasks):
            company = c.props("company_limetype")
            if company is not None:
                c.prop(company, o["company_coworker_relation"],
                       c.key("company_coworker_relation"), o["company_limetype"], "relation")


class Engagement:
    """Needs ``client``, ``opts``, ``pool_map``, ``log``."""

    client: LimeClient
    opts: dict[str, Any]
    log: FilteringBoundLogger

    if TYPE_CHECKING:
        def pool_map(self, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]: ...

        def person_id(self, key: str) -> int | None: ...

    def _by_external_id(self, limetype: str, external_id: str) -> str | None:
        prop = self.opts["external_id_property"]
        data = self.client.list(limetype, limit=1, filters=[(prop, external_id)])
        found = (data.get("_embedded") or {}).get("limeobjects") or []
        return str(found[0]["_id"]) if found else None

    def _create_once(self, limetype: str, values: dict[str, Any], key: str) -> WriteResult:
        external = values[self.opts["external_id_property"]]
        try:
            # once: a lost answer is settled by the lookup below, never by sending it again
            made = self.client.http.post(self.client.object_url(limetype), json=values,
                                         attempts=1).json()
            return WriteResult(key, "created", remote_id=str(made.get("_id") or ""))
        except RemoteError as exc:
            if not exc.retryable:
                return WriteResult(key, "failed", reason=str(exc), status=exc.status,
                                   endpoint=f"POST /api/v1/limeobject/{limetype}/")
            try:
                found = self._by_external_id(limetype, external)
            except RemoteError as again:
                return WriteResult(key, "failed", reason=str(again), retryable=True)
            if found is not None:
                return WriteResult(key, "unchanged", remote_id=found)
            return WriteResult(key, "failed", reason=str(exc), retryable=True)

    # -- response data -------------------------------------------------------------------------

    def write_engagement(self, events: Sequence[EngagementEvent], uncertain: frozenset[str]
                         ) -> list[WriteResult]:
        o = self.opts
        limetype = o["history_limetype"]
        ids = sorted({e.key for e in events})  # persons' keys (syncd_lime.keys)
        exists = dict(zip(ids, self.pool_map(
            lambda key: (pid := self.person_id(key)) is not None
            and self.client.get("person", pid) is not None, ids), strict=True))

        def one(event: EngagementEvent) -> WriteResult:
            if not exists.get(event.key):
                return WriteResult(event.dedupe, "skipped", reason="no such person in Lime")
            external = f"syncd-{event.dedupe}"
            if event.dedupe in uncertain:
                found = self._by_external_id(limetype, external)
                if found is not None:
                    return WriteResult(event.dedupe, "unchanged", remote_id=found)
            values = {o["history_note_property"]: activity_subject(event, o["history_note"]),
                      o["history_date_property"]: event.at,
                      o["history_person_relation"]: self.person_id(event.key),
                      o["external_id_property"]: external}
            if o["history_type_property"]:
                values[o["history_type_property"]] = event.type
            return self._create_once(limetype, values, event.dedupe)

        return self.pool_map(one, list(events))

    # -- tasks -----------------------------------------------------------------------------------

    def create_task(self, task: TaskRequest) -> TaskResult:
        o = self.opts
        limetype = o["todo_limetype"]
        external = "syncd-task-" + hashlib.sha256(task.idempotency_key.encode()).hexdigest()[:32]
        found = self._by_external_id(limetype, external)
        if found is not None:
            return TaskResult("exists", task_id=found)
        pid = self.person_id(task.record_id)
        person = self.client.get("person", pid) if pid is not None else None
        if person is None:
            return TaskResult("unknown_record", reason=f"no person {task.record_id} in Lime")
        manager = None
        if not task.assignee and task.assignee_rule == "account_manager":
            company = person.get("company")
            if company is not None:
                record = self.client.get("company", company) or {}
                manager = record.get(o["company_coworker_relation"])
        assignee = task.assignee or (str(manager) if manager else None) \
            or task.fallback_assignee or None
        if assignee is None:
            return TaskResult("unknown_assignee", reason="the call names no coworker, the "
                              "company has none and no fallback is set (fix: set "
                              "task_fallback_employee)")
        if not str(assignee).isdigit() or self.client.get("coworker", assignee) is None:
            return TaskResult("unknown_assignee", reason=f"no coworker {assignee} in Lime")
        values = {o["todo_subject_property"]: task.subject,
                  o["todo_description_property"]: task.description,
                  o["todo_due_property"]: task.due,
                  o["todo_person_relation"]: pid,
                  o["todo_coworker_relation"]: int(assignee),
                  o["external_id_property"]: external}
        result = self._create_once(limetype, values, task.idempotency_key)
        if result.outcome == "failed":
            return TaskResult("failed", reason=result.reason, retryable=result.retryable)
        return TaskResult("created" if result.outcome == "created" else "exists",
                          task_id=result.remote_id, assignee=str(assignee))
