"""Response data and automation tasks in Tribe CRM (a mixin of
:class:`syncd_tribe.connector.TribeConnector`).

Response data (``write_engagement``): each e-mail or SMS event becomes an activity in
``response_activity_set`` (default ``Activity_Event``: apis.md 1.2 names the set; its fields
are a GAP, verify with ``syncd check-config --online``) with ``Subject`` (from
``response_subject``: the campaign and the event), ``StartDate``/``EndDate`` (the event's
time), a ``Description`` and ``ImportId = syncd-<dedupe key>`` (apis.md 1.3 [CODE]: a
writable external id), linked through ``response_activity_nav`` to the person's contact
relationship (``response_activity_target = "contact"``, default, nav ``Relationship`` as the
vendor's task body, 1.6 [CODE]) or to the person (``"person"``, e.g. nav ``Relation``). An
event whose person does not exist (or has no contact, with target contact) is ``skipped``.
An ``uncertain`` event (its earlier write may have been applied) is looked up by its
``ImportId`` first; a POST whose answer is lost is never sent blindly again: the lookup
decides. Optional ``response_summary_fields`` (``{"email_opened" = "<person field>"}``) set
a person field to the time of the newest such event (for segments in Tribe).

Tasks (``create_task``): ``POST /v1/odata/Activity_Task`` with the body of apis.md 1.6
[CODE]: ``Subject``, ``StartDate``, ``EndDate`` (the due date), ``Description``,
``Assignee: {"ID": <Employee>}``, ``Relationship: {"ID": <contact>}``, plus ``ImportId =
syncd-task-<hash of the idempotency key>``: a task with that ImportId is never made twice.
The contact is the call's record id (a person: its chosen contact; or a contact itself).
The assignee is the call's employee, else (rule ``account_manager``) the contact's
``AccountManager`` (apis.md 1.4 [INFER] on person relationships: option
``account_manager_nav``), else the fallback; an id that is no Employee is
``unknown_assignee``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
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
    missing,
)

if TYPE_CHECKING:
    from syncd_tribe.client import TribeClient

EMPLOYEE_SET = "Relationship_Person_Contact_Employee"

OPTIONS: tuple[Option, ...] = (
    Option("response_activity_set", str, "Activity_Event",
           "The entity set response data is written to, one activity per event (the "
           "right activity type is not documented: verify with check-config --online)."),
    Option("response_activity_target", str, "contact",
           "What the activity is linked to: the person's contact relationship or the "
           "person.", choices=("contact", "person")),
    Option("response_activity_nav", str, "Relationship",
           "The activity's navigation to that contact (or person)."),
    Option("response_subject", str, "{campaign}: {channel} {event}",
           "Template of an activity's subject ({campaign}, {channel}, {event}, {subject}, "
           "{address})."),
    Option("response_summary_fields", dict, {},
           'Person fields set to the time of the newest event of a type, e.g. '
           '{ email_opened = "_<field uuid>" } (for segments in Tribe). Default: none.'),
    Option("task_set", str, "Activity_Task", "The entity set of tasks (apis.md 1.6)."),
    Option("account_manager_nav", str, "AccountManager",
           "The contact's navigation to its account manager (an Employee), for the "
           "task_assignee_rule account_manager."),
)


def import_id(prefix: str, key: str) -> str:
    return f"syncd-{prefix}{key}"


def iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Activities:
    """Needs ``client``, ``opts``, ``_fetch``, ``pool_map``, ``choose_contact``, ``log``."""

    client: TribeClient
    opts: dict[str, Any]
    log: FilteringBoundLogger

    if TYPE_CHECKING:
        def _fetch(self, entity_set: str, path: str, ids: list[str], **options: Any
                   ) -> list[dict[str, Any]]: ...

        def choose_contact(self, contacts: list[dict[str, Any]]) -> dict[str, Any] | None: ...

        def pool_map(self, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]: ...

    # -- lookups ---------------------------------------------------------------------------------

    def _imported(self, set_name: str, ids: list[str]) -> dict[str, str]:
        """``{ImportId: ID}`` of the entities of ``set_name`` with those ImportIds."""
        found = self._fetch(set_name, "ImportId", ids, select=["ID", "ImportId"])
        return {str(e["ImportId"]): str(e["ID"]) for e in found if e.get("ImportId")}

    def _contacts_of(self, person_ids: list[str]) -> dict[str, str]:
        """person id -> the id of its chosen contact relationship (persons without one are
        missing)."""
        by_person: dict[str, list[dict[str, Any]]] = {}
        for contact in self._fetch(self.opts["contact_set"], "Person/ID", person_ids,
                                   expand="Person($select=ID)"):
            pid = str((contact.get("Person") or {}).get("ID") or "").lower()
            by_person.setdefault(pid, []).append(contact)
        chosen = {pid: self.choose_contact(cs) for pid, cs in by_person.items()}
        return {pid: str(c["ID"]).lower() for pid, c in chosen.items() if c is not None}

    # -- response data ---------------------------------------------------------------------------

    def write_engagement(self, events: Sequence[EngagementEvent], uncertain: frozenset[str]
                         ) -> list[WriteResult]:
        events = list(events)
        set_name, nav = self.opts["response_activity_set"], self.opts["response_activity_nav"]
        ids = sorted({e.key.lower() for e in events})
        persons = {str(p["ID"]).lower() for p in self._fetch(
            self.opts["person_set"], "ID", ids, select=["ID"])}
        contact = self._contacts_of(sorted(persons)) \
            if self.opts["response_activity_target"] == "contact" else {p: p for p in persons}
        check = [import_id("", e.dedupe) for e in events if e.dedupe in uncertain]
        known = self._imported(set_name, check) if check else {}

        def one(event: EngagementEvent) -> WriteResult:
            pid = event.key.lower()
            if pid not in persons:
                return WriteResult(event.dedupe, "skipped", reason="no such person in Tribe")
            target = contact.get(pid)
            if target is None:
                return WriteResult(event.dedupe, "skipped", reason="the person has no contact")
            iid = import_id("", event.dedupe)
            if iid in known:
                return WriteResult(event.dedupe, "unchanged", remote_id=known[iid])
            body = {"Subject": activity_subject(event, self.opts["response_subject"]),
                    "StartDate": event.at, "EndDate": event.at, "ImportId": iid,
                    "Description": _description(event), nav: {"ID": target}}
            return self._create_once(set_name, body, event.dedupe)

        results = self.pool_map(one, events)  # the lane's pool
        self._summaries(events, results)
        return results

    def _create_once(self, set_name: str, body: dict[str, Any], key: str) -> WriteResult:
        """POST once; a lost answer is settled by looking the ImportId up."""
        try:
            made = self.client.create(set_name, body, attempts=1)
            return WriteResult(key, "created", remote_id=str((made or {}).get("ID") or ""))
        except RemoteError as exc:
            if not exc.retryable:
                return WriteResult(key, "failed", reason=str(exc), status=exc.status,
                                   endpoint=f"POST /v1/odata/{set_name}")
            try:
                found = self._imported(set_name, [body["ImportId"]])
            except RemoteError as again:
                return WriteResult(key, "failed", reason=str(again), retryable=True)
            if body["ImportId"] in found:
                return WriteResult(key, "unchanged", remote_id=found[body["ImportId"]])
            return WriteResult(key, "failed", reason=str(exc), retryable=True,
                               status=exc.status)

    def _summaries(self, events: list[EngagementEvent], results: list[WriteResult]) -> None:
        fields = self.opts.get("response_summary_fields") or {}
        if not fields:
            return
        newest: dict[str, dict[str, str]] = {}
        for event, result in zip(events, results, strict=True):
            field = fields.get(event.type)
            if field and result.outcome in ("created", "unchanged"):
                slot = newest.setdefault(event.key.lower(), {})
                slot[field] = max(slot.get(field, ""), event.at)
        for pid, values in newest.items():
            try:  # best effort: the events are written; a later event sets it again
                self.client.update(self.opts["person_set"], pid, values)
            except RemoteError as exc:
                self.log.warning("tribe.summary_not_written", record_id=pid, error=str(exc))

    # -- tasks -----------------------------------------------------------------------------------

    def create_task(self, task: TaskRequest) -> TaskResult:
        set_name = self.opts["task_set"]
        iid = import_id("task-", hashlib.sha256(task.idempotency_key.encode()).hexdigest()[:32])
        found = self._imported(set_name, [iid])
        if iid in found:
            return TaskResult("exists", task_id=found[iid])
        contact, manager = self._task_contact(task.record_id, task.assignee_rule)
        if contact is None:
            return TaskResult("unknown_record", reason=f"no person or contact {task.record_id} "
                                                      "in Tribe")
        assignee = task.assignee or manager or task.fallback_assignee or None
        if assignee is None:
            return TaskResult("unknown_assignee", reason="the call names no employee, the "
                              "contact has no account manager and no fallback is set (fix: "
                              "set task_fallback_employee)")
        if self.client.get(EMPLOYEE_SET, assignee, select=["ID"]) is None:
            return TaskResult("unknown_assignee", reason=f"no employee {assignee} in Tribe")
        body = {"Subject": task.subject, "Description": task.description,
                "StartDate": task.start or iso_now(), "EndDate": task.due or iso_now(),
                "Assignee": {"ID": assignee}, "Relationship": {"ID": contact}, "ImportId": iid}
        result = self._create_once(set_name, body, task.idempotency_key)
        if result.outcome == "failed":
            return TaskResult("failed", reason=result.reason, retryable=result.retryable)
        return TaskResult("created" if result.outcome == "created" else "exists",
                          task_id=result.remote_id, assignee=assignee)

    def _task_contact(self, record_id: str, rule: str) -> tuple[str | None, str | None]:
        """The contact relationship of a record id (a person's chosen contact, or a contact)
        and its account manager (when the rule asks for it)."""
        rid = record_id.lower()
        nav = self.opts["account_manager_nav"]
        expand = f"{nav}($select=ID)" if rule == "account_manager" else None
        contact_set = self.opts["contact_set"]
        try:
            contact = self.client.get(contact_set, rid, expand=expand)
        except RemoteError as exc:
            if exc.status != 400:  # not a key of that set
                raise
            contact = None
        if contact is None:
            try:
                person = self.client.get(self.opts["person_set"], rid, select=["ID"])
            except RemoteError as exc:
                if exc.status != 400:
                    raise
                person = None
            if person is None:
                return None, None
            chosen = self._contacts_of([rid]).get(rid)
            if chosen is None:
                return None, None
            contact = self.client.get(contact_set, chosen, expand=expand) or {"ID": chosen}
        manager = (contact.get(nav) or {}).get("ID") if expand else None
        return str(contact["ID"]).lower(), (str(manager) if manager else None)


def check_activities(c: Any, contact: str | None) -> None:
    """Preflight (``check_schema``, a :class:`syncd_tribe.schema._Checker` ``c``): the sets,
    fields and navigations response data and tasks write, when an integration uses them.
    Warnings: they stop response data or tasks, not the contact sync a full sync does."""
    before = len(c.problems)
    _check_activities(c, contact)
    c.problems[before:] = [dataclasses.replace(p, severity="warning")
                           for p in c.problems[before:]]


def _check_activities(c: Any, contact: str | None) -> None:
    opts = c.opts

    def has(entity: str, option: str, fields: tuple[str, ...],
            navs: tuple[tuple[str, str], ...]) -> None:
        props, links = c.meta.properties(entity), c.meta.navigations(entity)
        for name in fields:
            if name not in props:
                c.add(missing(c.key(option), f"{entity} has no field {name!r} (syncd writes "
                              "it)", name, props))
        for name, key in navs:
            if opts[name] not in links:
                c.add(missing(c.key(key), f"{entity} has no navigation {opts[name]!r}",
                              opts[name], links))

    if c.needs.of(NeedKind.RESPONSES):
        entity = c.entity_type("response_activity_set")
        if entity is not None:
            has(entity, "response_activity_set", ("Subject", "StartDate", "ImportId"),
                (("response_activity_nav", "response_activity_nav"),))
    tasks = c.needs.of(NeedKind.TASKS)
    if tasks:
        entity = c.entity_type("task_set")
        if entity is not None:
            links = c.meta.navigations(entity)
            has(entity, "task_set", ("Subject", "StartDate", "EndDate", "ImportId"), ())
            for nav in ("Assignee", "Relationship"):
                if nav not in links:
                    c.add(missing(c.key("task_set"), f"{entity} has no navigation {nav!r} "
                                  "(apis.md 1.6)", nav, links))
        if contact is not None and any(n.name == "account_manager" for n in tasks):
            has(contact, "contact_set", (), (("account_manager_nav", "account_manager_nav"),))


def _description(event: EngagementEvent) -> str:
    lines = [f"{'SMS' if event.channel == 'sms' else 'E-mail'} {event.verb} at {event.at}"]
    if event.subject:
        lines.append(f"Subject: {event.subject}")
    if event.address:
        lines.append(f"Address: {event.address}")
    lines.extend(f"{k.capitalize()}: {v}" for k, v in sorted(event.detail.items()))
    lines.append(f"Correlation id: {event.correlation_id}")
    return "\n".join(lines)
