"""The Lime emulator's webhook sender: one background thread, a queue, bounded retries.

Deliveries leave in the order the changes were made, each signed with its subscription's
secret (``X-Lime-Signature: sha256=<hex>``, apis.md 2.3). A non-2xx answer or a connection
error is retried ``attempts`` times in all with doubling back-off (Lime's retry policy is a
GAP); then the delivery counts as failed.
"""

from __future__ import annotations

import collections
import json
import threading
from typing import Any

import requests

from syncd_lime.webhooks import HEADER, sign


class Sender:
    def __init__(self, attempts: int = 5, backoff: float = 0.2, timeout: float = 5.0):
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.timeout = timeout
        self._queue: collections.deque[tuple[dict[str, Any], bytes]] = collections.deque()
        self._cond = threading.Condition()
        self._busy = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._log: collections.deque[dict[str, Any]] = collections.deque(maxlen=10_000)
        self.delivered = 0
        self.failed = 0
        self.session = requests.Session()

    def start(self) -> None:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="lime-webhooks", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self.session.close()

    def put(self, subscription: dict[str, Any], envelope: dict[str, Any]) -> None:
        body = json.dumps(envelope, separators=(",", ":")).encode()
        with self._cond:
            self._queue.append((dict(subscription), body))
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def log(self) -> list[dict[str, Any]]:
        with self._cond:
            return list(self._log)

    def stats(self) -> dict[str, int]:
        with self._cond:
            return {"webhooks_delivered": self.delivered, "webhooks_failed": self.failed,
                    "webhooks_pending": len(self._queue) + (1 if self._busy else 0)}

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._stopping.is_set())
                if self._stopping.is_set():
                    return
                subscription, body = self._queue.popleft()
                self._busy = True
            try:
                self._deliver(subscription, body)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _deliver(self, subscription: dict[str, Any], body: bytes) -> None:
        headers = {"Content-Type": "application/json"}
        if subscription.get("secret"):
            headers[HEADER] = sign(subscription["secret"], body)
        status: int | None = None
        attempt = 0
        for attempt in range(1, self.attempts + 1):
            try:
                status = self.session.post(subscription["target_url"], data=body,
                                           headers=headers, timeout=self.timeout).status_code
            except requests.RequestException:
                status = None
            if status is not None and 200 <= status < 300:
                break
            if attempt < self.attempts and self._stopping.wait(
                    self.backoff * 2 ** (attempt - 1)):
                break
        ok = status is not None and 200 <= status < 300
        with self._cond:
            if ok:
                self.delivered += 1
            else:
                self.failed += 1
            self._log.append({"subscription": subscription["id"],
                              "url": subscription["target_url"], "body": body,
                              "status": status, "attempts": attempt, "delivered": ok})
