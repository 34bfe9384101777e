"""Lime webhooks: the signature (signed accepted, forged refused), syncd's subscription found
and updated, real signed deliveries read back, and the consent message that is discarded."""

from __future__ import annotations

import json

import pytest
from syncd_lime.connector import LimeConnector
from syncd_lime.webhooks import sign

from syncd.exceptions import WebhookRejected
from syncd.plugin import Event, Secret

SECRET = "lime-whsec-1"


def parser(**options):
    return LimeConnector.webhook_parser("crm", {
        "webhook_secret": Secret(SECRET), "base_url": "https://acme.lime-crm.com/acme-app",
        "key_prefix": "", **options})


@pytest.mark.parametrize("prefix,key", [(None, "acme.lime-crm.com-acme-app:1002"),
                                        ("acme:", "acme:1002"), ("", "1002")])
def test_a_person_event_names_the_person_by_its_key(prefix, key):
    body = delivery("person.update", 1002, firstname="Ann")
    [event] = parser(key_prefix=prefix)({"X-Lime-Signature": sign(SECRET, body)}, body)
    assert event.record_id == key


def delivery(event: str, oid: int, **values) -> bytes:
    limetype = event.split(".")[0]
    return json.dumps({"event": event, "body": {"id": oid, "limetype": limetype,
                                                "values": values}}).encode()


def test_a_signed_delivery_is_accepted():
    body = delivery("person.update", 1002, firstname="Ann")
    [event] = parser()({"X-Lime-Signature": sign(SECRET, body)}, body)
    assert (event.record_id, event.kind, event.entity) == ("1002", "changed", "person")
    assert sign(SECRET, body).startswith("sha256=") and len(sign(SECRET, body)) == 71


@pytest.mark.parametrize("headers", [
    {},  # unsigned
    {"X-Lime-Signature": "sha256=" + "0" * 64},  # forged
    {"X-Lime-Signature": sign("another-secret", b"x")},  # signed with another secret
])
def test_a_forged_or_unsigned_delivery_is_refused(headers):
    body = delivery("person.update", 1002)
    with pytest.raises(WebhookRejected) as caught:
        parser()(headers, body)
    assert caught.value.status == 401


def test_the_signature_covers_the_raw_body():
    body = delivery("person.update", 1002)
    signature = sign(SECRET, body)
    tampered = body.replace(b"1002", b"1003")
    with pytest.raises(WebhookRejected):
        parser()({"x-lime-signature": signature}, tampered)


@pytest.mark.parametrize("event,expected", [
    ("person.new", ("1", "created", "person")),
    ("person.delete", ("1", "deleted", "person")),
    ("person.restore", ("1", "restored", "person")),
    ("company.update", ("company:1", "changed", "company")),
    ("consent.new", ("consent:1", "created", "consent")),
])
def test_event_kinds(event, expected):
    body = delivery(event, 1)
    [parsed] = parser()({"X-Lime-Signature": sign(SECRET, body)}, body)
    assert (parsed.record_id, parsed.kind, parsed.entity) == expected


def test_other_limetypes_are_ignored_and_bad_bodies_refused():
    body = delivery("deal.update", 5)
    assert parser()({"X-Lime-Signature": sign(SECRET, body)}, body) == []
    for bad in (b"not json", b'{"event": "person.update"}', b'{"event": "x", "body": {}}'):
        with pytest.raises(WebhookRejected) as caught:
            parser()({"X-Lime-Signature": sign(SECRET, bad)}, bad)
        assert caught.value.status == 400


def test_subscription_is_created_then_found_and_updated(emulator, connector, receiver):
    sid = connector.ensure_webhook(receiver.url)
    [sub] = emulator.webhooks()
    assert str(sub["id"]) == sid and sub["target_url"] == receiver.url
    assert {"person.new", "person.update", "person.delete", "person.restore",
            "company.update", "consent.new", "consent.update"} <= set(sub["events"])
    emulator.subscriptions[int(sid)]["enabled"] = False
    emulator.subscriptions[int(sid)]["events"] = ["person.new"]
    fresh = LimeConnector("crm", connector.config)
    try:
        assert fresh.ensure_webhook(receiver.url) == sid  # found, not a second one
    finally:
        fresh.stop()
    [sub] = emulator.webhooks()
    assert sub["enabled"] and "person.update" in sub["events"]


def test_subscription_follows_the_needs_shape_of_the_list(emulator, connector, receiver):
    emulator.subscription_shape = "hal"
    connector.ensure_webhook(receiver.url)
    connector.ensure_webhook(receiver.url)
    assert len(emulator.webhooks()) == 1


def deliveries_of(receiver, connector, count):
    assert receiver.wait_for(count)
    parse = LimeConnector.webhook_parser("crm", connector.config)
    return [e for headers, body in receiver.received[:count] for e in parse(headers, body)]


def test_real_deliveries_are_read_back(emulator, connector, receiver):
    connector.ensure_webhook(receiver.url)
    s = emulator.api_session()
    api = f"{emulator.url}/api/v1/limeobject"
    s.put(f"{api}/person/1004/", json={"firstname": "Real"}, timeout=5).raise_for_status()
    company = next(o["company"] for o in emulator.store.objects["person"].values()
                   if o["company"] is not None)
    s.put(f"{api}/company/{company}/", json={"name": "Renamed AB"}, timeout=5).raise_for_status()
    events = deliveries_of(receiver, connector, 2)
    records = {r.id: r for r in connector.read_records(events)}
    assert records["1004"].fields["firstname"] == "Real"
    members = [str(p) for p, o in emulator.store.objects["person"].items()
               if o["company"] == company]
    assert set(members) <= set(records)
    assert all(records[m].fields["company.name"] == "Renamed AB" for m in members)
    # the body is a hint: the read-back says what is true now
    s.put(f"{api}/person/1004/", json={"firstname": "Later"}, timeout=5).raise_for_status()
    assert connector.read_records([events[0]])[0].fields["firstname"] == "Later"


def test_a_consent_message_is_resolved_to_its_person(emulator, connector, receiver):
    connector.ensure_webhook(receiver.url)
    types = {t["title"]: t["_id"] for t in emulator.store.objects["consenttype"].values()}
    s = emulator.api_session()
    s.post(f"{emulator.url}/api/v1/limeobject/consent/", json={
        "approved": True, "date": "2030-01-01T00:00:00+00:00",
        "consenttype": types["Events"], "person": 1007}, timeout=5).raise_for_status()
    [event] = deliveries_of(receiver, connector, 1)
    [record] = connector.read_records([event])
    assert record.id == "1007" and "Events" in record.labels


@pytest.mark.parametrize("values,lacks", [
    ({"approved": True}, "consent without a person or a consent type"),
    ({"approved": True, "person": 1008}, "consent without a consent type"),
    ({"approved": False, "consenttype": "TYPE"}, "consent without a person"),
])
def test_a_consent_without_person_or_type_is_discarded(emulator, connector, receiver,
                                                       values, lacks):
    connector.ensure_webhook(receiver.url)
    types = {t["title"]: t["_id"] for t in emulator.store.objects["consenttype"].values()}
    if values.get("consenttype") == "TYPE":
        values = {**values, "consenttype": types["Newsletter"]}
    made = emulator.create("consent", values)
    [event] = deliveries_of(receiver, connector, 1)
    assert event.record_id == f"consent:{made['_id']}"
    assert connector.read_records([event]) == []
    assert connector.stats()["discarded"] == {lacks: 1}
    # a consent gone since: the message's own values decide
    gone = Event(f"consent:{made['_id'] + 999}", "deleted", "consent",
                 {"person": None, "consenttype": None})
    assert connector.read_records([gone]) == []


def test_the_subscription_follows_the_needs_on_reload(emulator, connector, receiver):
    from syncd.plugin import Need, NeedKind, SchemaNeeds

    connector.set_needs(SchemaNeeds("source", (Need(NeedKind.FIELD, "firstname", "k"),)))
    connector.ensure_webhook(receiver.url)
    [sub] = emulator.webhooks()
    assert sub["events"] == ["person.new", "person.update", "person.delete", "person.restore"]
    connector.set_needs(SchemaNeeds("source", (Need(NeedKind.FIELD, "company.name", "k"),)))
    [sub] = emulator.webhooks()
    assert {"company.update", "company.delete", "company.restore"} <= set(sub["events"])
    assert not any(e.startswith("consent.") for e in sub["events"])
