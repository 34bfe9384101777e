"""The Microsoft Graph client of the ``ms365`` connector: one mailbox per linked user.

Each request goes through the mailbox's :class:`MailboxGate` (apis.md 4.6: 4 concurrent
requests and 10 000 per 10 minutes per app per mailbox): at most ``concurrency`` in flight,
the request budget spent before sending, and a 429's ``Retry-After`` holding every request of
that mailbox, checked again right before the bytes go out. 5xx and timeouts are retried with
back-off; a 401 refreshes the user's token once; other 4xx are :class:`RemoteError`.

Requests (apis.md section): contacts CRUD ``/me/contacts[/{id}]`` (delegated) or
``/users/{upn}/contacts[/{id}]`` (application) (4.1); ``singleValueExtendedProperties`` write,
``$expand`` and ``$filter=…/Any(ep: …)`` (4.3); folder delta with next/delta links, 410 (4.4);
``/subscriptions`` POST/PATCH/DELETE (4.5); ``$batch`` of ≤ 20 chained with ``dependsOn``
so that Graph sends them to the mailbox one at a time (4.6).
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import requests

from syncd.plugin import RemoteError, report_call
from syncd_ms365.http_client import PinnedSession

BATCH_MAX = 20


class DeltaExpired(RemoteError):
    """HTTP 410 on a delta link: start a full re-read of that mailbox."""


def retry_after(headers: Mapping[str, str], default: float = 1.0) -> float:
    try:
        return max(0.0, float(headers.get("Retry-After", default)))
    except (TypeError, ValueError):
        return default


class MailboxGate:
    def __init__(self, concurrency: int, budget: int, window: float):
        self.slots = threading.BoundedSemaphore(concurrency)
        self.budget, self.window = budget, window
        self.lock = threading.Lock()
        self.hold_until = 0.0
        self.spent: deque[float] = deque()
        self.waited = 0.0

    def hold(self, seconds: float) -> None:
        with self.lock:
            self.hold_until = max(self.hold_until, time.monotonic() + seconds)

    def clear_to_send(self, cost: int = 1) -> None:
        """Block until the Retry-After hold is over and ``cost`` requests fit the budget;
        spend them. Called with a slot held, right before sending."""
        while True:
            with self.lock:
                now = time.monotonic()
                while self.spent and self.spent[0] <= now - self.window:
                    self.spent.popleft()
                wait = self.hold_until - now
                if wait <= 0 and len(self.spent) + cost > self.budget:
                    wait = self.spent[0] + self.window - now
                if wait <= 0:
                    self.spent.extend([now] * cost)
                    return
            self.waited += wait
            time.sleep(min(wait, 5.0))


class GraphClient:
    def __init__(self, options: Mapping[str, Any], token: Callable[[str, bool], str],
                 application: bool):
        self.base = options["graph_url"].rstrip("/")
        self.options = options
        self.token = token
        self.application = application
        self.session = PinnedSession(options.get("ca_bundle") or None,
                                     float(options.get("timeout", 30)))
        self.max_attempts = int(options.get("max_attempts", 6))
        self._gates: dict[str, MailboxGate] = {}
        self._lock = threading.Lock()
        self.counts = {"requests": 0, "throttled": 0, "retried": 0}

    def gate(self, user: str) -> MailboxGate:
        with self._lock:
            gate = self._gates.get(user)
            if gate is None:
                gate = self._gates[user] = MailboxGate(
                    int(self.options.get("concurrency", 4)),
                    int(self.options.get("request_budget", 10000)),
                    float(self.options.get("budget_window", 600)))
            return gate

    def root(self, user: str) -> str:
        """The mailbox's path: ``/users/{upn}`` with application permissions, ``/me``
        with a delegated token (apis.md 4.1)."""
        return f"/users/{user}" if self.application else "/me"

    def request(self, user: str, method: str, path: str, *, cost: int = 1,
                idempotent: bool = True, **kwargs: Any) -> requests.Response:
        """``idempotent=False``: a request whose answer was lost (timeout, dropped
        connection) is not sent again; :class:`RemoteError` with ``status`` None says so."""
        url = path if path.startswith("http") else self.base + path
        gate = self.gate(user)
        refreshed = False
        for attempt in range(1, self.max_attempts + 1):
            headers = dict(kwargs.pop("headers", None) or {})
            headers["Authorization"] = f"Bearer {self.token(user, refreshed)}"
            with gate.slots:
                gate.clear_to_send(cost)
                self.counts["requests"] += 1
                began = time.monotonic()
                try:
                    answer = self.session.request(method, url, headers=headers, **kwargs)
                except requests.RequestException as exc:
                    error: Exception = exc
                    answer = None
            # syncd explain: the attempt, when made for records (for_records)
            report_call(method, url, None if answer is None else answer.status_code,
                        round((time.monotonic() - began) * 1000), attempt=attempt,
                        error=type(error).__name__ if answer is None else
                        (_error_text(answer) if answer.status_code >= 400 else None))
            kwargs["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}
            if answer is None:
                if attempt == self.max_attempts or not idempotent:
                    raise RemoteError(f"Graph {method} {_template(path)}: "
                                      f"{type(error).__name__}", retryable=True)
                time.sleep(min(8.0, 0.2 * 2 ** attempt * random.uniform(0.5, 1.0)))
                continue
            if answer.status_code == 401 and not refreshed:
                refreshed = True
                continue
            if answer.status_code == 429 or (answer.status_code in (503, 504)
                                              and "Retry-After" in answer.headers):
                self.counts["throttled"] += 1
                gate.hold(retry_after(answer.headers))
                continue
            if answer.status_code >= 500 and attempt < self.max_attempts:
                self.counts["retried"] += 1
                time.sleep(min(8.0, 0.2 * 2 ** attempt * random.uniform(0.5, 1.0)))
                continue
            if answer.status_code == 410:
                raise DeltaExpired(f"Graph {method} {_template(path)}: 410 delta token "
                                   "expired", status=410)
            if answer.status_code >= 400:
                raise _error(method, path, answer)
            return answer
        raise RemoteError(f"Graph {method} {_template(path)}: still throttled after "
                          f"{self.max_attempts} attempts", status=429, retryable=True)

    def json(self, user: str, method: str, path: str, **kwargs: Any) -> Any:
        answer = self.request(user, method, path, **kwargs)
        return answer.json() if answer.content else None

    # -- batch -----------------------------------------------------------------------------

    def batch(self, user: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run ``items`` (``method``, ``url`` relative to the version, optional ``body``)
        through ``$batch`` in chains of ≤ 20 (each depends on the one before, so the
        mailbox sees one at a time); items answered 429 (and those after them, 424) are
        sent again once the Retry-After passed. Returns one response per item, in order."""
        out: list[dict[str, Any] | None] = [None] * len(items)
        pending = list(range(len(items)))
        tries = [0] * len(items)
        while pending:
            chunk, pending = pending[:BATCH_MAX], pending[BATCH_MAX:]
            requests_ = []
            for n, index in enumerate(chunk):
                item = items[index]
                req = {"id": str(n), "method": item["method"], "url": item["url"]}
                if item.get("body") is not None:
                    req["body"] = item["body"]
                    req["headers"] = {"Content-Type": "application/json"}
                if n:
                    req["dependsOn"] = [str(n - 1)]
                requests_.append(req)
            answer = self.json(user, "POST", "/$batch", json={"requests": requests_},
                               cost=len(chunk), idempotent=False)
            again, hold = [], 0.0
            for resp in answer["responses"]:
                index = chunk[int(resp["id"])]
                retry = resp["status"] in (429, 424) or resp["status"] >= 500
                if retry and resp["status"] != 424:
                    tries[index] += 1
                if retry and tries[index] < self.max_attempts:
                    again.append(index)
                    if resp["status"] == 429:
                        self.counts["throttled"] += 1
                        hold = max(hold, retry_after(resp.get("headers") or {}))
                else:
                    out[index] = resp  # done, or given up: the caller sees the answer
            if hold:
                self.gate(user).hold(hold)
            pending = sorted(again) + pending
        return [o or {} for o in out]


def _template(path: str) -> str:
    """The request path without ids or query (what a message may name)."""
    parts = path.split("?")[0].split("/")
    return "/".join("{id}" if len(p) > 40 or "@" in p else p for p in parts)


def _error_text(answer: requests.Response) -> str | None:
    try:
        err = answer.json().get("error") or {}
        return f"{err.get('code', '')}: {err.get('message', '')}".strip(": ") or None
    except (ValueError, AttributeError):
        return answer.reason or None


def _error(method: str, path: str, answer: requests.Response) -> RemoteError:
    try:
        err = answer.json().get("error") or {}
        detail = f"{err.get('code', '')}: {err.get('message', '')}".strip(": ")
    except ValueError:
        detail = answer.reason or ""
    status = answer.status_code
    return RemoteError(f"Graph {method} {_template(path)}: {status} {detail}", status=status,
                       retryable=status in (408, 409, 412), endpoint=f"{method} "
                       f"{_template(path)}", detail=detail)
