"""The Graph emulator where apis.md 4 speaks: auth, contacts CRUD, extended properties,
delta, $batch and the per-mailbox limits."""

from __future__ import annotations

import pytest

from tests.ms365.ms365_support import app_token, delegated_token, session

EXT_ID = "String {8e5b3a1c-0a4e-4f57-9d6c-3d1c4f7a2b10} Name TribeRelationId"
ANNA = "anna@contoso.example"


@pytest.fixture
def anna(graph, identity):
    return session(delegated_token(identity, ANNA))


def test_auth_rules(graph, identity, anna):
    base = f"{graph.url}/v1.0"
    assert session("nope").get(f"{base}/me/contacts").status_code == 401
    assert anna.get(f"{base}/me/contacts").status_code == 200
    assert anna.get(f"{base}/users/bob@contoso.example/contacts").status_code == 403
    app = session(app_token(identity))
    answer = app.get(f"{base}/me/contacts")
    assert answer.status_code == 400 and "delegated" in answer.json()["error"]["message"]
    assert app.get(f"{base}/users/{ANNA}/contacts").status_code == 200
    identity.clients["99999999-2222-3333-4444-555555555555"].app_roles.clear()
    app2 = session(app_token(identity))
    assert app2.get(f"{base}/users/{ANNA}/contacts").json()["error"]["code"] == \
        "ErrorAccessDenied"


def test_crud_with_change_key_churn_and_strict_bodies(graph, anna):
    base = f"{graph.url}/v1.0/me/contacts"
    created = anna.post(base, json={"givenName": "Petra", "surname": "Vries",
                                    "middleName": "de",
                                    "emailAddresses": [{"address": "p@x.example"}]})
    assert created.status_code == 201
    body = created.json()
    assert body["displayName"] == "Petra de Vries" and body["parentFolderId"]
    patched = anna.patch(f"{base}/{body['id']}", json={"jobTitle": "CEO"}).json()
    assert patched["changeKey"] != body["changeKey"] and patched["jobTitle"] == "CEO"
    assert anna.post(base, json={"nickname": "x"}).status_code == 400  # case matters
    assert anna.post(base, json={"id": "x"}).status_code == 400
    assert anna.post(base, json={"emailAddresses": ["a@b"]}).status_code == 400
    assert anna.post(base, json={"birthday": "1980-01-02"}).status_code == 400
    assert anna.post(base, json={"singleValueExtendedProperties": [
        {"id": "TribeRelationId", "value": "x"}]}).status_code == 400
    assert anna.delete(f"{base}/{body['id']}").status_code == 204
    assert anna.get(f"{base}/{body['id']}").status_code == 404


def test_extended_property_expand_and_filter(graph, anna):
    base = f"{graph.url}/v1.0/me/contacts"
    cid = anna.post(base, json={"surname": "A", "singleValueExtendedProperties": [
        {"id": EXT_ID, "value": "ABC-1"}]}).json()["id"]
    anna.post(base, json={"surname": "B"})
    plain = anna.get(f"{base}/{cid}").json()
    assert "singleValueExtendedProperties" not in plain
    expanded = anna.get(f"{base}/{cid}", params={
        "$expand": f"singleValueExtendedProperties($filter=id eq '{EXT_ID}')"}).json()
    assert expanded["singleValueExtendedProperties"] == [{"id": EXT_ID, "value": "ABC-1"}]
    found = anna.get(base, params={"$filter": "singleValueExtendedProperties/Any(ep: ep/id eq "
                                              f"'{EXT_ID}' and ep/value eq 'abc-1')"}).json()
    assert [c["id"] for c in found["value"]] == [cid]
    assert anna.get(base, params={"$filter": "surname eq 'A'"}).status_code == 400


def test_list_pages_with_next_links(graph, anna):
    base = f"{graph.url}/v1.0/me/contacts"
    for i in range(25):
        anna.post(base, json={"surname": f"S{i}"})
    seen, url, params = [], base, {"$top": "10", "$select": "surname"}
    while url:
        page = anna.get(url, params=params).json()
        params = None
        seen += [c["surname"] for c in page["value"]]
        url = page.get("@odata.nextLink")
    assert sorted(seen) == sorted(f"S{i}" for i in range(25))


def _delta_round(anna, url, headers=None):
    rows = []
    while True:
        answer = anna.get(url, headers=headers or {})
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert not ("@odata.nextLink" in page and "@odata.deltaLink" in page)
        rows += page["value"]
        if "@odata.deltaLink" in page:
            return rows, page["@odata.deltaLink"]
        url = page["@odata.nextLink"]


def test_delta_pages_changes_removals_and_410(graph, anna):
    base = f"{graph.url}/v1.0/me"
    ids = [anna.post(f"{base}/contacts", json={"surname": f"S{i}"}).json()["id"]
           for i in range(7)]
    folder = anna.get(f"{base}/contacts/{ids[0]}").json()["parentFolderId"]
    rows, link = _delta_round(anna, f"{base}/contactFolders/{folder}/contacts/delta",
                              {"Prefer": "odata.maxpagesize=3"})
    assert sorted(r["id"] for r in rows) == sorted(ids)
    anna.patch(f"{base}/contacts/{ids[1]}", json={"givenName": "X"})
    anna.patch(f"{base}/contacts/{ids[1]}", json={"givenName": "Y"})
    anna.delete(f"{base}/contacts/{ids[2]}")
    rows, link2 = _delta_round(anna, link)
    by_id = {r["id"]: r for r in rows}
    assert set(by_id) == {ids[1], ids[2]}
    assert by_id[ids[1]]["givenName"] == "Y"
    assert by_id[ids[2]] == {"id": ids[2], "@removed": {"reason": "deleted"}}
    assert _delta_round(anna, link2)[0] == []
    graph.expire_delta()
    gone = anna.get(link2)
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "SyncStateNotFound"


def test_batch_limits_depends_on_and_parallel_429(graph, anna):
    url = f"{graph.url}/v1.0/$batch"

    def item(i, deps=None):
        out = {"id": str(i), "method": "POST", "url": "/me/contacts",
               "headers": {"Content-Type": "application/json"}, "body": {"surname": f"B{i}"}}
        if deps:
            out["dependsOn"] = deps
        return out
    assert anna.post(url, json={"requests": [item(i) for i in range(21)]}).status_code == 400
    assert anna.post(url, json={"requests": [item(1), item(1)]}).status_code == 400
    parallel = anna.post(url, json={"requests": [item(i) for i in range(20)]}).json()
    statuses = [r["status"] for r in parallel["responses"]]
    assert statuses.count(201) == 4 and statuses.count(429) == 16
    assert all("Retry-After" in r["headers"] for r in parallel["responses"]
               if r["status"] == 429)
    graph.retry_after_grace = 5.0  # the next batch is not a violation of the 429s above
    chained = [item(0)] + [item(i, [str(i - 1)]) for i in range(1, 20)]
    statuses = [r["status"] for r in anna.post(url, json={"requests": chained}).json()[
        "responses"]]
    assert statuses == [201] * 20
    bad = [{"id": "0", "method": "PATCH", "url": "/me/contacts/nope",
            "headers": {"Content-Type": "application/json"}, "body": {"surname": "x"}},
           item(1, ["0"])]
    statuses = [r["status"] for r in anna.post(url, json={"requests": bad}).json()[
        "responses"]]
    assert statuses == [404, 424]


def test_mailbox_concurrency_and_budget_answer_429_and_count_violations(graph, anna, identity):
    base = f"{graph.url}/v1.0/me/contacts"
    oid = identity.users[ANNA]
    graph._inflight[oid] = 4  # four requests of this mailbox are being served
    answer = anna.get(base)
    assert answer.status_code == 429 and answer.json()["error"]["code"] == "ErrorThrottled"
    assert float(answer.headers["Retry-After"]) > 0
    graph.retry_after_grace = 0.0
    graph._inflight[oid] = 0
    anna.get(base)  # sent before the Retry-After ran out
    assert graph.stats()["retry_after_violations"] == 1
    graph._not_before.clear()
    graph.request_budget = 2
    graph._spent.clear()
    assert [anna.get(base).status_code for _ in range(3)] == [200, 200, 429]


def test_switch_delta_max_page(graph, anna):
    base = f"{graph.url}/v1.0/me"
    ids = [anna.post(f"{base}/contacts", json={"surname": f"P{i}"}).json()["id"]
           for i in range(5)]
    folder = anna.get(f"{base}/contacts/{ids[0]}").json()["parentFolderId"]
    graph.delta_max_page = 2  # the server caps what Prefer asks for
    page = anna.get(f"{base}/contactFolders/{folder}/contacts/delta",
                    headers={"Prefer": "odata.maxpagesize=100"}).json()
    assert len(page["value"]) == 2 and "@odata.nextLink" in page
    rows, _ = _delta_round(anna, page["@odata.nextLink"])
    assert sorted([r["id"] for r in page["value"] + rows]) == sorted(ids)


def test_switch_merge_on_email(graph, anna):
    base = f"{graph.url}/v1.0/me/contacts"
    anna.post(base, json={"givenName": "Gert", "jobTitle": "Baker",
                          "emailAddresses": [{"address": "same@x.example"}]})
    new = {"givenName": "Petra", "emailAddresses": [{"address": "same@x.example"}]}
    plain = anna.post(base, json=new).json()
    assert anna.get(f"{base}/{plain['id']}").json()["jobTitle"] is None
    graph.merge_on_email = True
    merged = anna.post(base, json=new).json()
    assert merged["jobTitle"] is None  # the answer is the card as created ...
    assert anna.get(f"{base}/{merged['id']}").json()["jobTitle"] == "Baker"  # ... then merged


def test_read_only_switch_refuses_the_mailboxs_writes_only(graph, identity, anna):
    base = f"{graph.url}/v1.0/me/contacts"
    created = anna.post(base, json={"surname": "Before"}).json()
    graph.read_only = {ANNA}  # also settable: POST /_emulator/settings {"read_only": [...]}
    refused = anna.post(base, json={"surname": "After"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "ErrorAccessDenied"
    assert anna.patch(f"{base}/{created['id']}", json={"surname": "X"}).status_code == 403
    assert anna.delete(f"{base}/{created['id']}").status_code == 403
    assert anna.get(f"{base}/{created['id']}").json()["surname"] == "Before"  # reads go on
    bob = session(delegated_token(identity, "bob@contoso.example"))
    assert bob.post(base, json={"surname": "Bob's"}).status_code == 201
    graph.read_only = set()
    assert anna.post(base, json={"surname": "After"}).status_code == 201


def test_omit_fields_switch_leaves_properties_out_of_every_read(graph, anna):
    base = f"{graph.url}/v1.0/me/contacts"
    created = anna.post(base, json={"surname": "Kept", "jobTitle": "Buyer",
                                    "givenName": "Ann"}).json()
    assert requests_settings(graph, {"omit_fields": ["surname", "jobTitle"]}) == 200
    one = anna.get(f"{base}/{created['id']}").json()
    listed = anna.get(base).json()["value"][0]
    assert "surname" not in one and "jobTitle" not in one and one["givenName"] == "Ann"
    assert "surname" not in listed and listed["givenName"] == "Ann"
    folder = one["parentFolderId"]
    delta = anna.get(f"{graph.url}/v1.0/me/contactFolders/{folder}/contacts/delta").json()
    assert delta["value"] and all("surname" not in row for row in delta["value"])
    graph.omit_fields = set()
    assert anna.get(f"{base}/{created['id']}").json()["surname"] == "Kept"


def requests_settings(graph, body) -> int:
    import requests

    return requests.post(f"{graph.url}/_emulator/settings", json=body, timeout=5).status_code
