"""The Notebook connector: a source of contacts (``read_records``, ``parse_webhooks``,
``read_record``). It imports syncd only from :mod:`syncd.plugin`."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any, ClassVar

from syncd.plugin import (
    Capability,
    Connector,
    Event,
    HttpClient,
    Option,
    Page,
    RateBudget,
    Record,
    RemoteError,
    Secret,
    StaticToken,
    WebhookRejected,
)

OPTIONS = (
    Option("base_url", str, "https://notebook.example", "Notebook's API address."),
    Option("api_key", Secret, None, "The API key (sent as a bearer token)."),
    Option("webhook_secret", Secret, None,
           "The key of X-Notebook-Signature (HMAC-SHA256 of the raw body)."),
    Option("requests_per_second", float, 10.0, "Requests a second at most (0: no limit).",
           minimum=0.0),
    Option("backoff", float, 0.5, "Seconds before the first retry (doubling).", minimum=0.0),
)


class NotebookConnector(Connector):
    kind: ClassVar[str] = "notebook"
    description = "Notebook address book (the example plugin)"
    capabilities = frozenset({Capability.READ_RECORDS, Capability.PARSE_WEBHOOKS,
                              Capability.READ_RECORD})
    options = OPTIONS
    emulator = "syncd_example.emulator:NotebookEmulator"

    def start(self) -> None:
        key = self.config.get("api_key")
        self.http = HttpClient(
            self.config["base_url"], auth=StaticToken(key) if key is not None else None,
            budget=RateBudget(float(self.config.get("requests_per_second") or 0.0)),
            backoff=float(self.config.get("backoff", 0.5)), max_attempts=4)
        self.requests = 0

    def stop(self) -> None:
        self.http.close()

    def check(self) -> dict[str, Any]:
        data = self._get("/contacts", params={"offset": 0, "limit": 1})
        return {"contacts": data.get("total")}

    def stats(self) -> dict[str, Any]:
        return {"requests": self.requests}

    def _get(self, path: str, **kwargs: Any) -> Any:
        self.requests += 1
        return self.http.request("GET", path, **kwargs).json()

    @staticmethod
    def _record(contact: Mapping[str, Any]) -> Record:
        fields = {k: v for k, v in contact.items() if k != "id" and
                  (v is None or isinstance(v, str | int | float | bool))}
        return Record(str(contact["id"]), fields, email=contact.get("email"))

    # -- read_records --------------------------------------------------------------------------

    def read_page(self, cursor: str | None, page_size: int, since: str | None = None) -> Page:
        data = self._get("/contacts", params={"offset": int(cursor or 0), "limit": page_size})
        nxt = data.get("next")
        return Page(tuple(self._record(c) for c in data["items"]),
                    None if nxt is None else str(nxt), total=data.get("total"))

    def read_records(self, events: list[Event]) -> list[Record]:
        out = []
        for event in events:
            record = self.read_record(event.record_id)
            out.append(record if record is not None else Record(event.record_id, deleted=True))
        return out

    # -- read_record ---------------------------------------------------------------------------

    def read_record(self, record_id: str) -> Record | None:
        try:
            return self._record(self._get(f"/contacts/{record_id}"))
        except RemoteError as exc:
            if exc.status == 404:
                return None
            raise

    # -- parse_webhooks ------------------------------------------------------------------------

    @classmethod
    def webhook_parser(cls, name: str, config: Mapping[str, Any]):
        secret = config.get("webhook_secret")

        def parse(headers: Mapping[str, str], body: bytes) -> list[Event]:
            given = {k.lower(): v for k, v in headers.items()}.get("x-notebook-signature", "")
            expected = "" if secret is None else hmac.new(
                secret.reveal().encode(), body, hashlib.sha256).hexdigest()
            if not expected or not hmac.compare_digest(given, expected):
                raise WebhookRejected(401, "bad or missing X-Notebook-Signature")
            try:
                data = json.loads(body)
                kind = "deleted" if data.get("event") == "deleted" else "changed"
                return [Event(str(data["id"]), kind=kind)]
            except (ValueError, KeyError, TypeError, AttributeError):
                raise WebhookRejected(400, 'body must be JSON {"id": ..., "event": ...}'
                                      ) from None

        return parse

    # -- the sandbox and `syncd emulate` -------------------------------------------------------

    @classmethod
    def sandbox_config(cls, emulator: Any) -> dict[str, Any]:
        return {"kind": cls.kind, "base_url": emulator.url, "api_key": emulator.api_key,
                "webhook_secret": emulator.webhook_secret, "requests_per_second": 0.0}
