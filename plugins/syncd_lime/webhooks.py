"""Lime webhooks (the "Webhooks" add-on, apis.md 2.3): the signature and the envelope.

Signature [DOC index page; CODE vendor ``nodes/crypto.ts``]: ``X-Lime-Signature:
sha256=<lowercase hex HMAC-SHA256(secret, raw body)>``, compared in constant time over the
raw bytes before any JSON is parsed.

Envelope [DOC example page]: ``{"event": "person.update", "body": {"id", "limetype",
"values": {...}, "original_values": {...}}}``. ``values`` are a hint, never the truth (events
can arrive out of order): the connector reads back the objects events name. Events of the
person limetype become person events; those of the company and consent limetypes become
``company:<id>`` / ``consent:<id>`` events the connector resolves to persons when it reads
them back; any other limetype is ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from typing import Any

from syncd.plugin import Event, Secret, WebhookRejected

HEADER = "X-Lime-Signature"
KINDS = {"new": "created", "update": "changed", "delete": "deleted", "restore": "restored"}
PERSON, COMPANY, CONSENT = "person", "company", "consent"


def sign(secret: str | bytes, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.reveal() if isinstance(value, Secret) else str(value)


def _id(value: Any) -> str | None:
    if isinstance(value, bool) or value is None or value == "":
        return None
    if isinstance(value, Mapping):  # tolerate {"id": ..} / {"_id": ..} for a relation
        value = value.get("id", value.get("_id"))
        return _id(value)
    return str(value)


def event_of(envelope: Mapping[str, Any], limetypes: Mapping[str, str],
             relations: Mapping[str, str] | None = None, key_prefix: str = "") -> list[Event]:
    """The event of one delivery (``limetypes``: role -> the configured limetype name, e.g.
    ``{"person": "person", "company": "company", "consent": "consent"}``; ``relations``:
    the consent's ``person`` and ``type`` relation names; a person's event names it by its
    key, ``key_prefix`` and its id, :mod:`syncd_lime.keys`); [] for any other limetype."""
    relations = relations or {}
    name = envelope.get("event")
    body = envelope.get("body")
    if not isinstance(name, str) or "." not in name or not isinstance(body, Mapping):
        raise WebhookRejected(400, 'body is not a Lime webhook {"event": "<limetype>.<what>", '
                                   '"body": {...}}')
    limetype, _, what = name.rpartition(".")
    limetype = str(body.get("limetype") or limetype)
    oid = _id(body.get("id"))
    if oid is None:
        raise WebhookRejected(400, "the webhook body names no object id")
    role = next((r for r, t in limetypes.items() if t == limetype), None)
    if role is None:
        return []
    values = body.get("values")
    if not isinstance(values, Mapping):
        values = {}
    kind = KINDS.get(what, what)
    data: dict[str, Any] = {"event": name}
    if role == PERSON:
        if key_prefix:  # the keys the person may have (one written before key_prefix: its id)
            data["person"] = [f"{key_prefix}{oid}", oid]
        return [Event(record_id=f"{key_prefix}{oid}", kind=kind, entity=PERSON, data=data)]
    if role == CONSENT:  # the message's person and type: a hint for a consent gone since;
        # the person by the keys it may have, its Lime id last (syncd.engine.newest.concerns)
        person = _id(values.get(relations.get("person", "person")))
        data.update(person=[f"{key_prefix}{person}", person] if key_prefix and person
                    else person,
                    consenttype=_id(values.get(relations.get("type", "consenttype"))))
    return [Event(record_id=f"{role}:{oid}", kind=kind, entity=role, data=data)]


def make_parser(secret: Any, limetypes: Mapping[str, str],
                relations: Mapping[str, str] | None = None, connection: str = "lime",
                key_prefix: str = "") -> Callable[[Mapping[str, str], bytes], list[Event]]:
    """A ``(headers, raw_body) -> events`` function that checks the signature first."""
    key = _text(secret)
    header = HEADER.lower()
    limetypes = dict(limetypes)
    relations = dict(relations or {})

    def parse(headers: Mapping[str, str], body: bytes) -> list[Event]:
        if not key:
            raise WebhookRejected(401, f"connection {connection!r} has no webhook_secret, so no "
                                       "delivery can be verified (fix: set webhook_secret in "
                                       f"[connections.{connection}])")
        given = next((v for k, v in headers.items() if k.lower() == header), None)
        if not given:
            raise WebhookRejected(401, f"missing {HEADER} header")
        if not hmac.compare_digest(given.strip().lower().encode(), sign(key, body).encode()):
            raise WebhookRejected(401, f"bad {HEADER} signature")
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise WebhookRejected(400, "body is not JSON") from None
        items = data if isinstance(data, list) else [data]
        if not all(isinstance(i, Mapping) for i in items):
            raise WebhookRejected(400, "body is not a Lime webhook envelope")
        return [e for item in items for e in event_of(item, limetypes, relations,
                                                        key_prefix)]

    return parse
