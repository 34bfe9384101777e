"""Tasks from marketing automation: ``POST /tasks/{integration}`` on the receiver (seed 000:
"Create an activity from a marketing automation flow and assign to a user").

An automation flow's webhook step calls it with ``Authorization: Bearer <tasks_secret>`` (the
integration's own secret, compared in constant time) and a JSON body::

    {"idempotency_key": "<flow run id>", "contact": "<CRM id>", "employee": "<optional>",
     "subject": "...", "description": "...", "due": "2026-12-01", "campaign": "..."}

1. The call is checked (401 bad secret, 404 no such integration or no task endpoint, 400
   bad body; a call without ``contact`` or key is refused 400 and recorded when it has a key).
2. It is stored in the state database by its idempotency key *before* anything is created
   or answered. A key stored before is not created again: its stored outcome is answered
   (a retried call never makes a second task).
3. The task is created through the source's ``create_task`` (:class:`~syncd.engagement.
   TaskCreator`), which looks the key up in the CRM first (``ImportId``): an earlier attempt
   whose answer was lost is found, not repeated.
4. Every call that reaches the CRM (or is refused for its content) is also a run of kind
   ``task`` in ``syncd runs`` (its key as the run's cursor; the reason per record when it
   made no task).
5. Answers: 201 ``{"task_id"}`` created; 200 the same key again; 422 unknown contact or
   employee (recorded as ``rejected``, listed by ``syncd events list``); 503 +
   ``Retry-After`` when the CRM could not be reached (stored as ``failed``: the retried call
   tries again).
"""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Callable
from typing import Any

import structlog

from syncd.connectors.connector import Capability
from syncd.engagement import BadTaskCall, TaskResult, task_from_call
from syncd.engine.store import Store, StoreError
from syncd.web.wsgi import Request

log = structlog.get_logger("syncd.web.tasks")

CALL_TIMEOUT = 60.0
RETRY_AFTER = "30"
MAX_BODY = 65_536

#: ``resolve(integration)`` -> ``(IntegrationConfig, source proxy, source capabilities)``
#: or None when the integration does not exist or is not running.
Resolve = Callable[[str], tuple[Any, Any, frozenset] | None]


def _answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
    return status, body, headers or {}, None


class TaskEndpoint:
    def __init__(self, store: Store, resolve: Resolve):
        self.store = store
        self.resolve = resolve
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def _lock(self, integration: str, key: str) -> threading.Lock:
        with self._locks_lock:
            if len(self._locks) > 10_000:
                self._locks.clear()
            return self._locks.setdefault((integration, key), threading.Lock())

    def handle(self, request: Request):
        name = request.params["integration"]
        found = self.resolve(name)
        if found is None or found[0].tasks_secret is None:
            return _answer(404, {"error": f"no task endpoint for integration {name!r}"})
        integration, source, caps = found
        given = (request.header("Authorization") or "").removeprefix("Bearer ").strip()
        secret = integration.tasks_secret
        secret = secret.reveal() if hasattr(secret, "reveal") else str(secret)
        if not given or not hmac.compare_digest(given.encode(), secret.encode()):
            log.warning("tasks.refused", integration=name, status=401)
            return _answer(401, {"error": "missing or wrong bearer secret"})
        if Capability.CREATE_TASKS not in caps:
            return _answer(404, {"error": f"the source of {name} cannot create tasks"})
        if source is None:
            return _answer(503, {"error": "the CRM connection is restarting; call again"},
                           {"Retry-After": RETRY_AFTER})
        try:
            raw = request.body
            if len(raw) > MAX_BODY:
                return _answer(413, {"error": f"body over {MAX_BODY} bytes"})
            call = json.loads(raw or b"null")
            if not isinstance(call, dict):
                raise ValueError("not an object")
        except ValueError:
            return _answer(400, {"error": "the body must be a JSON object"})
        key = str(call.get("idempotency_key") or call.get("id") or "").strip()
        try:
            task = task_from_call(call, subject=integration.task_subject,
                                  description=integration.task_description,
                                  due_days=integration.task_due_days,
                                  assignee_rule=integration.task_assignee_rule,
                                  fallback=integration.task_fallback_employee)
        except BadTaskCall as exc:
            if key and len(key) <= 200:
                self._record(name, key, str(call.get("contact") or ""), call, "rejected",
                             str(exc))
            log.warning("tasks.bad_call", integration=name, reason=str(exc))
            return _answer(400, {"error": str(exc)})
        with self._lock(name, task.idempotency_key):
            return self._create(name, source, task, call)

    def _record(self, name: str, key: str, record: str, call: dict, status: str,
                reason: str | None) -> None:
        try:
            self.store.put_task(name, key, record, call)
            self._settle(name, key, record, status, reason=reason)
        except StoreError as exc:
            log.error("tasks.not_recorded", integration=name, error=str(exc))

    def _settle(self, name: str, key: str, record: str, status: str, *,
                task_id: str | None = None, reason: str | None = None,
                outcome: str | None = None) -> None:
        """Store the call's outcome, and record it as a run of kind ``task`` (``syncd runs``:
        counts, and the reason per record when it made no task)."""
        self.store.set_task(name, key, status, task_id=task_id, reason=reason)
        try:
            run_id = self.store.start_run(name, "task", cursor=key)
            made = status == "created" and outcome != "exists"
            counts = {"processed": 1, "created" if made else
                      ("unchanged" if status == "created" else "failed"): 1}
            errors = [] if status == "created" else [(record or key, reason or status,
                                                      status == "failed")]
            self.store.progress_run(run_id, counts, errors=errors)
            self.store.count_run(run_id, {f"task_{outcome or status}": 1})
            self.store.finish_run(run_id, "completed" if status == "created" else status,
                                  None if status == "created" else reason)
        except StoreError as exc:  # the call's outcome is stored; its run is a nicety
            log.error("tasks.run_not_recorded", integration=name, error=str(exc))

    def _create(self, name: str, source, task, call: dict):
        try:
            fresh = self.store.put_task(name, task.idempotency_key, task.record_id, call)
            stored = None if fresh else self.store.task(name, task.idempotency_key)
        except StoreError as exc:
            log.error("tasks.store_failed", integration=name, error=str(exc))
            return _answer(503, {"error": "cannot store the call now"},
                           {"Retry-After": RETRY_AFTER})
        if stored is not None and stored["status"] == "created":
            return _answer(200, {"status": "exists", "task_id": stored["task_id"]})
        if stored is not None and stored["status"] == "rejected":
            return _answer(422, {"error": stored["reason"], "status": "rejected"})
        try:
            result: TaskResult = source.create_task(task).get(timeout=CALL_TIMEOUT)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            self._settle(name, task.idempotency_key, task.record_id, "failed", reason=reason)
            log.warning("tasks.failed", integration=name, key=task.idempotency_key,
                        error=reason)
            return _answer(503, {"error": "the CRM could not be reached; call again",
                                 "status": "failed"}, {"Retry-After": RETRY_AFTER})
        key = task.idempotency_key
        if result.outcome in ("created", "exists"):
            self._settle(name, key, task.record_id, "created", task_id=result.task_id,
                         outcome=result.outcome)
            log.info("tasks.created", integration=name, key=key, task_id=result.task_id,
                     outcome=result.outcome, record_id=task.record_id)
            status = 201 if result.outcome == "created" and stored is None else 200
            return _answer(status, {"status": result.outcome, "task_id": result.task_id,
                                    "assignee": result.assignee})
        if result.outcome in ("unknown_record", "unknown_assignee"):
            self._settle(name, key, task.record_id, "rejected", reason=result.reason)
            log.warning("tasks.rejected", integration=name, key=key, reason=result.reason,
                        record_id=task.record_id)
            return _answer(422, {"error": result.reason, "status": "rejected",
                                 "code": result.outcome})
        self._settle(name, key, task.record_id, "failed", reason=result.reason)
        if result.retryable:
            return _answer(503, {"error": result.reason, "status": "failed"},
                           {"Retry-After": RETRY_AFTER})
        return _answer(422, {"error": result.reason, "status": "failed"})


def task_events(store: Store, integration: str | None, failed: bool) -> list[dict[str, Any]]:
    """Task calls for ``syncd events list``: the rejected ones (and, when not only the failed
    are asked for, those waiting for a retried call)."""
    rows = store.tasks(integration, "rejected")
    if not failed:
        rows += store.tasks(integration, "failed") + store.tasks(integration, "pending")
    return [{"id": f"task:{r['key']}", "integration": r["integration"], "connection": "tasks",
             "record_id": r["record_id"], "kind": "task",
             "status": "dead" if r["status"] == "rejected" else "pending",
             "received_at": r["received_at"], "attempts": 1, "error": r["reason"]}
            for r in rows]


def resolver(daemon: Any) -> Resolve:
    """The daemon's current config and source connection of an integration."""

    def resolve(name: str):
        integration = daemon.config.integrations.get(name)
        if integration is None or not integration.enabled:
            return None
        conn = daemon.config.connections[integration.source]
        caps = daemon.registry.connector(conn.kind).capabilities
        try:
            source = daemon.connection(integration.source)
        except Exception:  # restarting: the caller gets a 503 and calls again
            source = None
        return integration, source, caps

    return resolve
