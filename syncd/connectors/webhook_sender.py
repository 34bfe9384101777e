"""The webhook sender of partner emulators: one background thread, a queue, bounded retries.

An emulator whose partner calls webhooks (a CRM telling syncd that a record changed) queues
each call with :meth:`WebhookSender.put`; the thread delivers them in the order they were
queued. A non-2xx answer or a connection error is retried ``attempts`` times in all, with
doubling back-off from ``backoff`` seconds; then the delivery counts as failed. Every
delivery is logged (``log()``: the target, the body, the last status, the attempts).

What differs between partners stays in their plugin: a subclass says, in
:meth:`WebhookSender.address`, where a delivery goes and how it is signed (the partner's
signature scheme and header), as a :class:`WebhookDelivery`.
"""

from __future__ import annotations

import collections
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import requests


@dataclass(frozen=True)
class WebhookDelivery:
    """Where one webhook goes and with what: its ``url``, the ``headers`` beyond
    ``Content-Type: application/json`` (the signature among them), and ``names``: the
    fields that name its target in the sender's log (e.g. ``{"webhook": "<id>"}``)."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    names: dict[str, Any] = field(default_factory=dict)


class WebhookSender:
    """Delivers an emulator's webhooks in order, in a thread of its own (``start``/``stop``).

    Subclasses implement :meth:`address`."""

    def __init__(self, attempts: int = 5, backoff: float = 0.2, timeout: float = 5.0, *,
                 thread_name: str = "webhooks"):
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.timeout = timeout
        self.thread_name = thread_name
        self._queue: collections.deque[tuple[dict[str, Any], bytes]] = collections.deque()
        self._cond = threading.Condition()
        self._busy = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._log: collections.deque[dict[str, Any]] = collections.deque(maxlen=10_000)
        self.delivered = 0
        self.failed = 0
        self.session = requests.Session()

    def address(self, target: dict[str, Any], body: bytes) -> WebhookDelivery:
        """Where the webhook ``body`` for ``target`` (the emulator's record of a registered
        webhook or subscription) goes, and its headers, signature included."""
        raise NotImplementedError

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name=self.thread_name,
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self.session.close()

    # -- queueing and what tests ask ---------------------------------------------------------

    def put(self, target: dict[str, Any], envelope: dict[str, Any]) -> None:
        """Queue ``envelope`` (sent as compact JSON) for ``target`` (copied now)."""
        body = json.dumps(envelope, separators=(",", ":")).encode()
        with self._cond:
            self._queue.append((dict(target), body))
            self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + (1 if self._busy else 0)

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

    # -- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._stopping.is_set())
                if self._stopping.is_set():
                    return
                target, body = self._queue.popleft()
                self._busy = True
            try:
                self._deliver(target, body)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _deliver(self, target: dict[str, Any], body: bytes) -> None:
        delivery = self.address(target, body)
        headers = {"Content-Type": "application/json", **delivery.headers}
        status: int | None = None
        attempt = 0
        for attempt in range(1, self.attempts + 1):
            try:
                status = self.session.post(delivery.url, data=body, headers=headers,
                                           timeout=self.timeout).status_code
            except requests.RequestException:
                status = None
            if status is not None and 200 <= status < 300:
                break
            if attempt < self.attempts and self._stopping.wait(
                    self.backoff * 2 ** (attempt - 1)):
                break  # stopping
        ok = status is not None and 200 <= status < 300
        with self._cond:
            if ok:
                self.delivered += 1
            else:
                self.failed += 1
            self._log.append({**delivery.names, "url": delivery.url, "body": body,
                              "status": status, "attempts": attempt, "delivered": ok})
