"""Tribe webhooks: the signature and the delivery envelope (apis.md 1.7).

Signature: ``base64(HMAC-SHA512(secret, raw body))``. The docs say "SHA-512 encode using the
secret, then convert the hex to Base64 as bytes", i.e. Base64 of the digest bytes. The header
that carries it is not named in the public docs (a GAP): it is configurable
(``signature_header``, default ``X-Tribe-Signature``).

Envelope: ``{"webhookId": "...", "payload": {...}}``; the payload names ``entityId`` or
``relationshipId``. Its other fields are a GAP too; this parser reads the mutation type from
``type``, ``mutationType`` or ``@type`` (``EntityUpdateMutation`` ...) and ``entityType``
(``Relation.Person`` ...) when present, and tolerates a list of payloads.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from syncd.plugin import Event, Secret, WebhookRejected

PERSON = "person"
RELATIONSHIP = "relationship"


def sign(secret: str | bytes, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return base64.b64encode(hmac.new(key, body, hashlib.sha512).digest()).decode("ascii")


def _secret_text(value: Any) -> str | None:
    if value is None:
        return None
    return value.reveal() if isinstance(value, Secret) else str(value)


def mutation_kind(mutation: str) -> str:
    """``EntityCreationMutation`` -> ``created``; update -> ``changed``; deletion -> ``deleted``."""
    low = mutation.lower()
    if "creat" in low:
        return "created"
    if "delet" in low or "remov" in low:
        return "deleted"
    return "changed"


def type_matches(entity_type: str, accepted: Iterable[str]) -> bool:
    """``Relationship.Person.Contact.Standard`` matches ``Relationship.Person.Contact``; the
    entity-set spelling (``Relation_Person``) is accepted for the dotted one."""
    entity_type = entity_type.replace("_", ".")
    for want in accepted:
        want = want.replace("_", ".")
        if entity_type == want or entity_type.startswith(want + "."):
            return True
    return False


def events_from(payload: Mapping[str, Any], webhook_id: Any,
                accepted: Iterable[str]) -> list[Event]:
    """The events of one mutation payload (empty for an entity type we do not follow)."""
    mutation = str(payload.get("type") or payload.get("mutationType") or payload.get("@type")
                   or "")
    entity_type = payload.get("entityType")
    relationship_id = payload.get("relationshipId")
    entity_id = payload.get("entityId")
    if relationship_id is None and entity_id is None:
        raise WebhookRejected(400, "payload has neither entityId nor relationshipId")
    if entity_type is not None and not type_matches(str(entity_type), accepted):
        return []
    is_relationship = relationship_id is not None or mutation.startswith("Relationship") \
        or str(entity_type or "").startswith("Relationship")
    record_id = str(relationship_id if relationship_id is not None else entity_id)
    data = {k: v for k, v in (("webhookId", webhook_id), ("type", mutation or None),
                              ("entityType", entity_type)) if v is not None}
    return [Event(record_id=record_id.lower(), kind=mutation_kind(mutation),
                  entity=RELATIONSHIP if is_relationship else PERSON, data=data)]


def make_parser(secret: Any, header: str, accepted: Iterable[str],
                connection: str = "tribe") -> Callable[[Mapping[str, str], bytes], list[Event]]:
    """A ``(headers, raw_body) -> events`` function that checks the signature first."""
    key = _secret_text(secret)
    header_lower = header.lower()
    accepted = tuple(accepted)

    def parse(headers: Mapping[str, str], body: bytes) -> list[Event]:
        if not key:
            raise WebhookRejected(401, f"connection {connection!r} has no webhook_secret, so no "
                                       "delivery can be verified (fix: set webhook_secret in "
                                       f"[connections.{connection}])")
        given = next((v for k, v in headers.items() if k.lower() == header_lower), None)
        if not given:
            raise WebhookRejected(401, f"missing {header} header")
        expected = sign(key, body)
        if not hmac.compare_digest(given.strip().encode(), expected.encode()):
            raise WebhookRejected(401, f"bad {header} signature")
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):  # deep nesting: not JSON we take
            raise WebhookRejected(400, "body is not JSON") from None
        if not isinstance(data, dict) or "payload" not in data:
            raise WebhookRejected(400, 'body is not a Tribe envelope {"webhookId", "payload"}')
        payloads = data["payload"]
        if isinstance(payloads, dict):
            payloads = [payloads]
        if not isinstance(payloads, list) or not all(isinstance(p, dict) for p in payloads):
            raise WebhookRejected(400, "payload must be an object")
        events: list[Event] = []
        for payload in payloads:
            events.extend(events_from(payload, data.get("webhookId"), accepted))
        return events

    return parse
