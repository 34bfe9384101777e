"""Helpers of the receiver tests: a small HMAC webhook parser and a recording notify."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading

from syncd.engine.store import Store
from syncd.exceptions import WebhookRejected
from syncd.records import Event

SECRET = b"webhook-secret-0123"
MAX_BODY = 1024


def sign(body: bytes, secret: bytes = SECRET) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def hmac_parser(headers, body: bytes) -> list[Event]:
    """Signed JSON ``{"ids": [...], "kind": "..."}``; ``kind == "ignored"`` gives no events."""
    given = headers.get("x-signature", "")
    if not hmac.compare_digest(given, sign(body)):
        raise WebhookRejected(401, "bad or missing X-Signature")
    try:
        data = json.loads(body)
        if data.get("kind") == "ignored":
            return []
        return [Event(str(i), kind=data.get("kind", "changed")) for i in data["ids"]]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise WebhookRejected(400, "body must be JSON {\"ids\": [...]}") from None


class Notified:
    """The notify callback: records each call and what the store held at that moment."""

    def __init__(self, store: Store):
        self.store = store
        self.calls: list[list[str]] = []
        self.pending_seen: list[dict[str, int]] = []
        self.event = threading.Event()
        self.fail = False

    def __call__(self, names: list[str]) -> None:
        self.calls.append(list(names))
        self.pending_seen.append({n: self.store.pending_count(n) for n in names})
        self.event.set()
        if self.fail:
            raise RuntimeError("coordinator gone")


def body_of(ids, **extra) -> bytes:
    return json.dumps({"ids": ids, **extra}).encode()
