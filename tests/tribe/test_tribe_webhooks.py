"""Tribe webhooks: signature checks in the parser, and real signed deliveries from the
emulator to a local receiver after changes made through the API."""

from __future__ import annotations

import json
import random

import pytest
from syncd_tribe.connector import TribeConnector
from syncd_tribe.webhooks import sign

from syncd.config.schema import Secret
from syncd.exceptions import WebhookRejected

SECRET = "whsec-test-123"


def parser(**options):
    return TribeConnector.webhook_parser("crm", {"webhook_secret": Secret(SECRET), **options})


def envelope(**payload) -> bytes:
    return json.dumps({"webhookId": "wh1", "payload": payload}).encode()


def signed(body: bytes, header="X-Tribe-Signature", secret=SECRET) -> dict[str, str]:
    return {header: sign(secret, body)}


def test_signed_person_update_is_accepted():
    body = envelope(type="EntityUpdateMutation", entityType="Relation.Person",
                    entityId="ABC-1")
    [event] = parser()(signed(body), body)
    assert (event.record_id, event.kind, event.entity) == ("abc-1", "changed", "person")
    assert event.data["webhookId"] == "wh1"


@pytest.mark.parametrize("payload,expected", [
    ({"type": "EntityCreationMutation", "entityId": "p"}, ("p", "created", "person")),
    ({"mutationType": "EntityDeletionMutation", "entityId": "p"}, ("p", "deleted", "person")),
    ({"@type": "RelationshipUpdateMutation", "relationshipId": "r",
      "entityType": "Relationship.Person.Contact.Standard"}, ("r", "changed", "relationship")),
    ({"type": "RelationshipCreationMutation", "relationshipId": "r"},
     ("r", "created", "relationship")),
])
def test_mutation_types(payload, expected):
    body = envelope(**payload)
    [event] = parser()(signed(body), body)
    assert (event.record_id, event.kind, event.entity) == expected


def test_other_entity_types_are_ignored():
    body = envelope(type="EntityUpdateMutation", entityType="Relation.Organization",
                    entityId="o1")
    assert parser()(signed(body), body) == []


def test_header_lookup_is_case_insensitive_and_configurable():
    body = envelope(type="EntityUpdateMutation", entityId="p1")
    assert parser()({"x-tribe-signature": sign(SECRET, body)}, body)
    custom = parser(signature_header="X-Signature")
    assert custom({"X-SIGNATURE": sign(SECRET, body)}, body)
    with pytest.raises(WebhookRejected) as info:
        custom(signed(body), body)
    assert info.value.status == 401


@pytest.mark.parametrize("headers,status,reason", [
    ({}, 401, "missing X-Tribe-Signature"),
    ({"X-Tribe-Signature": ""}, 401, "missing"),
    ({"X-Tribe-Signature": "bm90IGl0"}, 401, "bad X-Tribe-Signature"),
    ("other-secret", 401, "bad"),
])
def test_bad_signatures_are_rejected(headers, status, reason):
    body = envelope(type="EntityUpdateMutation", entityId="p1")
    if headers == "other-secret":
        headers = signed(body, secret="other-secret")
    with pytest.raises(WebhookRejected) as info:
        parser()(headers, body)
    assert info.value.status == status and reason in info.value.reason


def test_a_signature_over_other_bytes_is_rejected():
    body = envelope(type="EntityUpdateMutation", entityId="p1")
    tampered = body.replace(b"p1", b"p2")
    with pytest.raises(WebhookRejected) as info:
        parser()(signed(body), tampered)
    assert info.value.status == 401


def test_without_a_secret_everything_is_rejected_with_the_fix():
    body = envelope(type="EntityUpdateMutation", entityId="p1")
    no_secret = TribeConnector.webhook_parser("crm", {})
    with pytest.raises(WebhookRejected) as info:
        no_secret(signed(body), body)
    assert info.value.status == 401 and "fix: set webhook_secret" in info.value.reason


@pytest.mark.parametrize("body,reason", [
    (b"not json", "not JSON"),
    (b"\xff\xfe", "not JSON"),
    (b'["a"]', "envelope"),
    (b'{"webhookId": "x"}', "envelope"),
    (b'{"webhookId": "x", "payload": "p"}', "object"),
    (b'{"webhookId": "x", "payload": {"type": "EntityUpdateMutation"}}', "entityId"),
])
def test_malformed_bodies_are_400_after_the_signature(body, reason):
    with pytest.raises(WebhookRejected) as info:
        parser()(signed(body), body)
    assert info.value.status == 400 and reason in info.value.reason
    with pytest.raises(WebhookRejected) as unsigned:  # unsigned: 401, the body is not read
        parser()({}, body)
    assert unsigned.value.status == 401


def test_a_change_through_the_api_is_delivered_signed(emulator, connector, receiver):
    connector.ensure_webhook(receiver.url)
    person = emulator.persons()[4]["ID"]
    session = emulator.api_session()
    session.put(f"{emulator.url}/v1/odata/Relation_Person({person})",
                json={"LastName": "Gewijzigd"}).raise_for_status()
    assert receiver.wait_for(1)
    headers, body = receiver.received[0]
    events = TribeConnector.webhook_parser("crm", connector.opts)(headers, body)
    assert [(e.record_id, e.kind, e.entity) for e in events] == [(person, "changed", "person")]
    [record] = connector.read_records(events)
    assert record.fields["LastName"] == "Gewijzigd"


def test_contact_changes_arrive_as_relationship_events(emulator, connector, receiver):
    connector.ensure_webhook(receiver.url)
    contact = emulator.contacts()[2]
    session = emulator.api_session()
    session.put(f"{emulator.url}/v1/odata/Relationship_Person_Contact_Standard({contact['ID']})",
                json={"EmailAddress": "nieuw@work.example"}).raise_for_status()
    assert emulator.wait_deliveries(10) and receiver.wait_for(1)
    parse = TribeConnector.webhook_parser("crm", connector.opts)
    events = [e for h, b in receiver.received for e in parse(h, b)]
    assert [(e.record_id, e.entity) for e in events] == [(contact["ID"], "relationship")]
    [record] = connector.read_records(events)
    assert record.id == contact["Person"]["ID"]
    assert record.email == "nieuw@work.example"


def test_failed_deliveries_are_retried(emulator, connector, receiver):
    receiver.statuses = [500, 503]
    connector.ensure_webhook(receiver.url)
    emulator.mutate(random.Random(1))
    assert emulator.wait_deliveries(10)
    assert receiver.received, "delivered after the retries"
    log = emulator.deliveries()
    assert log[0]["delivered"] and log[0]["attempts"] == 3
    assert emulator.stats()["webhooks_delivered"] == len(log)
    assert emulator.stats()["webhooks_failed"] == 0


def test_seeding_fires_no_webhooks(emulator, connector, receiver):
    connector.ensure_webhook(receiver.url)
    emulator.seed(5, seed=9)
    assert emulator.wait_deliveries(5)
    assert receiver.received == [] and emulator.deliveries() == []


def test_mutate_changes_through_the_api(emulator, connector, receiver):
    connector.ensure_webhook(receiver.url)
    rng = random.Random(11)
    lines = [emulator.mutate(rng) for _ in range(6)]
    assert all(isinstance(line, str) and line for line in lines)
    assert emulator.wait_deliveries(10)
    parse = TribeConnector.webhook_parser("crm", connector.opts)
    events = [e for h, b in receiver.received for e in parse(h, b)]
    assert len(events) >= 6
    records = connector.read_records(events)
    assert records and all(r.id for r in records)
