"""The Lime emulator: strict where apis.md 2 says [DOC]/[CODE], and each [GAP] switch."""

from __future__ import annotations

import json

import pytest
import requests
from syncd_lime.emulator import LimeEmulator
from syncd_lime.webhooks import sign

API = "/api/v1"


def test_every_api_request_needs_the_api_key(emulator):
    assert requests.get(f"{emulator.url}{API}/", timeout=5).status_code == 401
    bad = requests.get(f"{emulator.url}{API}/limeobject/person/",
                       headers={"X-API-Key": "wrong"}, timeout=5)
    assert bad.status_code == 401
    ok = requests.get(f"{emulator.url}{API}/", headers={"x-api-key": emulator.api_key},
                      timeout=5)
    assert ok.status_code == 200  # header names are case-insensitive


def test_hal_list_with_filters_sort_and_next_links(emulator):
    s = emulator.api_session()
    data = s.get(f"{emulator.url}{API}/limeobject/person/",
                 params={"_limit": 5, "customertype": "A", "_sort": "-_id"}, timeout=5).json()
    rows = data["_embedded"]["limeobjects"]
    assert len(rows) == 5 and all(r["customertype"] == "A" for r in rows)
    assert [r["_id"] for r in rows] == sorted((r["_id"] for r in rows), reverse=True)
    assert {"_id", "_timestamp", "_descriptive", "_createdtime", "_createduser",
            "_updateduser"} <= set(rows[0])
    assert isinstance(rows[0]["company"], int | None)  # a belongs-to relation: a plain id
    nxt = data["_links"]["next"]["href"]
    assert "_offset=5" in nxt and "customertype=A" in nxt
    span = s.get(f"{emulator.url}{API}/limeobject/person/",
                 params={"min-_id": 1010, "max-_id": 1012, "not-customertype": "Z"},
                 timeout=5).json()["_embedded"]["limeobjects"]
    assert [r["_id"] for r in span] == [1010, 1011, 1012]


def test_unknown_property_or_option_is_a_400(emulator):
    s = emulator.api_session()
    for params in ({"nosuchfield": "x"}, {"min-nosuch": 1}, {"_embed": "company"}):
        assert s.get(f"{emulator.url}{API}/limeobject/person/", params=params,
                     timeout=5).status_code == 400
    assert s.post(f"{emulator.url}{API}/limeobject/person/", json={"bogus": 1},
                  timeout=5).status_code == 400
    assert s.get(f"{emulator.url}{API}/limeobject/nosuchtype/", timeout=5).status_code == 404


def test_page_cap_with_and_without_next_links(emulator):
    s = emulator.api_session()
    emulator.page_cap, emulator.next_links = 7, False
    data = s.get(f"{emulator.url}{API}/limeobject/person/", params={"_limit": 50},
                 timeout=5).json()
    assert len(data["_embedded"]["limeobjects"]) == 7 and "next" not in data["_links"]
    emulator.next_links = True
    data = s.get(f"{emulator.url}{API}/limeobject/person/", params={"_limit": 50},
                 timeout=5).json()
    assert len(data["_embedded"]["limeobjects"]) == 7 and "_offset=7" in \
        data["_links"]["next"]["href"]


def test_ignore_offset_serves_the_first_page_again(emulator):
    emulator.ignore_offset = True
    s = emulator.api_session()
    a = s.get(f"{emulator.url}{API}/limeobject/person/?_limit=3&_offset=3", timeout=5).json()
    assert a["_embedded"]["limeobjects"][0]["_id"] == 1001


@pytest.mark.parametrize("shape", ["dict", "list"])
def test_limetype_api_in_both_shapes(emulator, shape):
    emulator.limetype_shape = shape
    s = emulator.api_session()
    names = [t["name"] for t in s.get(f"{emulator.url}{API}/limetype/",
                                      timeout=5).json()["_embedded"]["limetypes"]]
    assert {"person", "company", "coworker", "consent", "consenttype"} <= set(names)
    props = s.get(f"{emulator.url}{API}/limetype/consent/", timeout=5).json()["properties"]
    names = [p["name"] for p in props] if shape == "list" else list(props)
    assert {"approved", "date", "note", "source", "consenttype", "person"} <= set(names)


def test_an_instance_without_the_consent_addon():
    with LimeEmulator(consent_addon=False) as emu:
        s = emu.api_session()
        assert s.get(f"{emu.url}{API}/limetype/consent/", timeout=5).status_code == 404
        person = s.get(f"{emu.url}{API}/limetype/person/", timeout=5).json()["properties"]
        assert "consent" not in person


@pytest.mark.parametrize("retry_after", [True, False])
def test_per_ip_budget_answers_429(emulator, retry_after):
    emulator.request_budget, emulator.budget_window = 3, 60.0
    emulator.retry_after = retry_after
    s = emulator.api_session()
    statuses = [s.get(f"{emulator.url}{API}/", timeout=5) for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    assert ("Retry-After" in statuses[-1].headers) is retry_after
    # every request counts, with or without the key: the limit is per IP
    assert requests.get(f"{emulator.url}{API}/", timeout=5).status_code == 429


def test_subscriptions_and_signed_deliveries(emulator, receiver):
    s = emulator.api_session()
    base = f"{emulator.url}{API}/subscription/"
    assert "person.update" in s.get(base + "available/", timeout=5).json()
    assert s.post(base, json={"events": ["nosuch.event"], "target_url": receiver.url},
                  timeout=5).status_code == 400
    made = s.post(base, json={"events": ["person.update", "person.new"],
                              "target_url": receiver.url, "secret": "sek", "name": "t"},
                  timeout=5)
    assert made.status_code == 201 and "secret" not in made.json()
    sid = made.json()["id"]
    assert s.get(base, timeout=5).json()[0]["id"] == sid
    s.put(f"{emulator.url}{API}/limeobject/person/1001/", json={"firstname": "Zed"},
          timeout=5).raise_for_status()
    assert receiver.wait_for(1)
    headers, body = receiver.received[0]
    assert headers["X-Lime-Signature"] == sign("sek", body)
    hook = json.loads(body)
    assert hook["event"] == "person.update" and hook["body"]["id"] == 1001
    assert hook["body"]["values"]["firstname"] == "Zed" and "timestamp" in hook["body"]["values"]
    assert list(hook["body"]["original_values"]) == ["firstname"]
    # disabled: no delivery; the list's HAL shape
    s.put(base + str(sid), json={"enabled": False}, timeout=5).raise_for_status()
    s.put(f"{emulator.url}{API}/limeobject/person/1001/", json={"firstname": "Ann"},
          timeout=5).raise_for_status()
    emulator.wait_deliveries(5)
    assert len(receiver.received) == 1
    emulator.subscription_shape = "hal"
    assert s.get(base, timeout=5).json()["_embedded"]["subscriptions"][0]["id"] == sid


def test_a_subscription_without_a_secret_gets_unsigned_deliveries(emulator, receiver):
    s = emulator.api_session()
    made = s.post(f"{emulator.url}{API}/subscription/", json={
        "events": ["person.update"], "target_url": receiver.url}, timeout=5)
    made.raise_for_status()
    s.put(f"{emulator.url}{API}/limeobject/person/1001/", json={"firstname": "Una"},
          timeout=5).raise_for_status()
    assert emulator.wait_deliveries(5)
    headers, body = receiver.received[0]
    assert "X-Lime-Signature" not in headers and json.loads(body)["event"] == "person.update"
    [entry] = emulator.deliveries()
    assert (entry["subscription"], entry["url"], entry["delivered"]) == \
        (made.json()["id"], receiver.url, True)


def test_new_delete_restore_events(emulator, receiver):
    s = emulator.api_session()
    s.post(f"{emulator.url}{API}/subscription/", json={
        "events": ["person.new", "person.delete", "person.restore"],
        "target_url": receiver.url, "secret": "k"}, timeout=5).raise_for_status()
    pid = s.post(f"{emulator.url}{API}/limeobject/person/", json={"lastname": "Ny"},
                 timeout=5).json()["_id"]
    s.delete(f"{emulator.url}{API}/limeobject/person/{pid}/", timeout=5).raise_for_status()
    assert s.get(f"{emulator.url}{API}/limeobject/person/{pid}/", timeout=5).status_code == 404
    emulator.restore("person", pid)
    assert receiver.wait_for(3)
    events = [json.loads(b)["event"] for _, b in receiver.received]
    assert events == ["person.new", "person.delete", "person.restore"]
    assert all("original_values" not in json.loads(b)["body"] for _, b in receiver.received)


def test_query_api_minimal_and_related_lists(emulator):
    s = emulator.api_session()
    q = json.dumps({"limetype": "person", "responseFormat": {"object": {"_id": "", "email": ""}},
                    "limit": 3, "offset": 2, "orderBy": [{"_id": "DESC"}]})
    objects = s.get(f"{emulator.url}{API}/query/", params={"q": q}, timeout=5).json()["objects"]
    assert [o["_id"] for o in objects] == [1058, 1057, 1056] and set(objects[0]) == {"_id",
                                                                                    "email"}
    refused = json.dumps({"limetype": "person", "filter": {"key": "email"}})
    assert s.get(f"{emulator.url}{API}/query/", params={"q": refused},
                 timeout=5).status_code == 400  # the filter DSL is a GAP
    pid = next(p for p, o in emulator.store.objects["person"].items()
               if emulator.consents_of(p))
    related = s.get(f"{emulator.url}{API}/limeobject/person/{pid}/consent/",
                    timeout=5).json()["_embedded"]["limeobjects"]
    assert sorted(c["_id"] for c in related) == sorted(c["_id"] for c in
                                                       emulator.consents_of(pid))


def test_system_and_relation_range_switches(emulator):
    s = emulator.api_session()
    url = f"{emulator.url}{API}/limeobject/"
    assert s.get(url + "person/?min-_id=1002", timeout=5).status_code == 200
    assert s.get(url + "consent/?min-person=1002", timeout=5).status_code == 200
    emulator.system_filters, emulator.relation_ranges = False, False
    assert s.get(url + "person/?min-_id=1002", timeout=5).status_code == 400
    assert s.get(url + "person/?_sort=_id", timeout=5).status_code == 200
    assert s.get(url + "consent/?min-person=1002", timeout=5).status_code == 400
    assert s.get(url + "consent/?person=1002", timeout=5).status_code == 200
