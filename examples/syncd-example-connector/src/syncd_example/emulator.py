"""The Notebook emulator: a real HTTP server on loopback playing Notebook's API.

Strict where the API is documented (bearer key, paging by offset and limit, 404 of a
missing contact, signed webhooks). Switches for what a partner might do: ``page_cap`` (the
server returns at most this many per page, whatever ``limit`` asks; 0: no cap), plus the
faults of :class:`syncd.plugin.Emulator` (5xx, 429 with Retry-After, hangs) on demand.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import secrets
from typing import Any

import requests

from syncd.plugin import Emulator, HTTPError, Request, Router


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class NotebookEmulator(Emulator):
    kind = "notebook"

    def __init__(self, *args: Any, page_cap: int = 0, **kwargs: Any):
        self.api_key = "nb-key-" + secrets.token_hex(8)
        self.webhook_secret = "nb-whsec-" + secrets.token_hex(8)
        self.page_cap = page_cap
        self.contacts: dict[str, dict[str, Any]] = {}
        self.webhook_url: str | None = None
        super().__init__(*args, **kwargs)

    def setup_routes(self, router: Router) -> None:
        router.add("GET", "/contacts", self._list)
        router.add("GET", "/contacts/{id}", self._one)

    def _auth(self, request: Request) -> None:
        if request.header("Authorization") != f"Bearer {self.api_key}":
            raise HTTPError(401, {"error": "bad api key"})

    def _list(self, request: Request) -> dict[str, Any]:
        self._auth(request)
        offset = int(request.arg("offset", "0") or 0)
        limit = int(request.arg("limit", "50") or 50)
        if self.page_cap:
            limit = min(limit, self.page_cap)
        with self.lock:
            ids = sorted(self.contacts)
            items = [self.contacts[i] for i in ids[offset:offset + limit]]
        nxt = offset + len(items)
        return {"items": items, "next": nxt if nxt < len(ids) else None, "total": len(ids)}

    def _one(self, request: Request) -> dict[str, Any]:
        self._auth(request)
        with self.lock:
            contact = self.contacts.get(request.params["id"])
        if contact is None:
            raise HTTPError(404, {"error": "no such contact"})
        return contact

    # -- what tests and the sandbox use ------------------------------------------------------

    def add(self, contact_id: str, name: str, email: str, **fields: Any) -> dict[str, Any]:
        with self.lock:
            self.contacts[contact_id] = {"id": contact_id, "name": name, "email": email,
                                         **fields}
            return self.contacts[contact_id]

    def seed(self, count: int, seed: int = 0) -> None:
        rng = random.Random(seed)
        for i in range(count):
            name = rng.choice(["Anna", "Bram", "Cleo", "Daan", "Eva"]) + f" {i}"
            self.add(f"nb-{i:04}", name, f"person{i}@notebook.example", segment="A")

    def delivery(self, contact_id: str, event: str = "updated") -> tuple[dict[str, str], bytes]:
        """A signed webhook delivery as Notebook sends it."""
        body = json.dumps({"id": contact_id, "event": event}).encode()
        return {"X-Notebook-Signature": sign(self.webhook_secret, body)}, body

    def mutate(self, rng: random.Random) -> str:
        contact_id = rng.choice(sorted(self.contacts))
        with self.lock:
            self.contacts[contact_id]["name"] += "*"
        if self.webhook_url:
            headers, body = self.delivery(contact_id)
            requests.post(self.webhook_url, data=body, headers=headers, timeout=5)
        return f"renamed {contact_id}"
