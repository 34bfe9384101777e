"""The Tribe emulator as an HTTP server: auth, OData queries, writes, paging, budgets."""

from __future__ import annotations

import pytest
import requests
from syncd_tribe.emulator import TribeEmulator

PERSONS = "/v1/odata/Relation_Person"
CONTACTS = "/v1/odata/Relationship_Person_Contact_Standard"


def api(emulator):
    return emulator.api_session(), emulator.url


def test_token_endpoint_checks_the_client(emulator):
    bad = requests.post(f"{emulator.url}/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": emulator.client_id,
        "client_secret": "wrong"}, timeout=5)
    assert bad.status_code == 401
    assert bad.json()["error"] == "invalid_client" and bad.json()["error_description"]
    good = requests.post(f"{emulator.url}/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": emulator.client_id,
        "client_secret": emulator.client_secret}, timeout=5)
    assert good.status_code == 200
    assert good.json()["token_type"] == "bearer" and good.json()["expires_in"] > 0


def test_api_needs_a_valid_bearer(emulator):
    assert requests.get(emulator.url + PERSONS, timeout=5).status_code == 401
    session, url = api(emulator)
    assert session.get(url + PERSONS, params={"$top": "1"}).status_code == 200
    emulator.tokens.expire_all()
    expired = session.get(url + PERSONS, params={"$top": "1"})
    assert expired.status_code == 401
    assert set(expired.json()["error"]) == {"code", "message"}


def test_query_options(emulator):
    session, url = api(emulator)
    data = session.get(url + PERSONS, params={
        "$select": "FirstName,LastName", "$orderby": "LastName desc,ID", "$top": "5",
        "$skip": "2", "$count": "true", "$expand": "Labels($select=Name)"}).json()
    assert data["@odata.count"] == len(emulator.persons()) > 50
    assert len(data["value"]) == 5
    assert set(data["value"][0]) == {"ID", "FirstName", "LastName", "Labels"}
    everyone = sorted(emulator.persons(), key=lambda p: p["ID"])
    everyone.sort(key=lambda p: p["LastName"].casefold(), reverse=True)
    assert [p["ID"] for p in data["value"]] == [p["ID"] for p in everyone[2:7]]
    bad = session.get(url + PERSONS, params={"$filter": "LastName in ('Bos')"})
    assert bad.status_code == 400 and "'in' is not supported" in bad.json()["error"]["message"]
    assert session.get(url + PERSONS, params={"$expand": "Nope"}).status_code == 400
    assert session.get(url + "/v1/odata/Relation_Nothing").status_code == 404


def test_navigation_filter_and_expand(emulator):
    session, url = api(emulator)
    contact = emulator.contacts()[3]
    pid = contact["Person"]["ID"]
    data = session.get(url + CONTACTS, params={
        "$filter": f"Person/ID eq {pid.upper()}",
        "$expand": "Relation($select=Name),Person($select=ID,LastName)"}).json()
    assert [c["ID"] for c in data["value"]] == [contact["ID"]]
    assert data["value"][0]["Relation"] == {"ID": contact["Relation"]["ID"],
                                            "Name": contact["Relation"]["Name"]}
    one = session.get(f"{url}/v1/odata/Relation_Person({pid})").json()
    assert one["ID"] == pid and one["_Type"] == "Relation.Person"
    # the abstract set answers for its concrete sets
    assert session.get(f"{url}/v1/odata/Relation({pid})").status_code == 200
    me = session.get(f"{url}/v1/odata/GetCurrentEmployee()", params={"$expand": "Person"})
    assert me.json()["ID"] == emulator.employee_id and me.json()["Person"]["LastName"]


def test_server_paging_emits_next_links(emulator):
    emulator.server_paging = 7
    session, url = api(emulator)
    data = session.get(url + PERSONS, params={"$orderby": "ID", "$top": "20",
                                              "$select": "ID"}).json()
    seen = [p["ID"] for p in data["value"]]
    assert len(seen) == 7
    while "@odata.nextLink" in data:
        data = session.get(data["@odata.nextLink"]).json()
        seen += [p["ID"] for p in data["value"]]
    assert len(seen) == 20  # the client's $top is honoured across the links
    assert seen == sorted(p["ID"] for p in emulator.persons())[:20]


def test_writes(emulator):
    session, url = api(emulator)
    org = emulator.organizations()[1]["ID"]
    created = session.post(url + CONTACTS, json={
        "Person": {"FirstName": "Nieuw", "LastName": "Mens"}, "Relation": {"ID": org},
        "EmailAddress": "nieuw@work.example"})
    assert created.status_code == 201
    contact = created.json()
    person = next(c for c in emulator.contacts() if c["ID"] == contact["ID"])["Person"]["ID"]
    assert emulator.person(person)["_Name"] == "Nieuw Mens"
    before = emulator.person(person)["LastMutationDate"]
    assert session.put(f"{url}/v1/odata/Relation_Person({person})",
                       json={"FirstName": "Oud"}).status_code == 200
    after = emulator.person(person)
    assert after["FirstName"] == "Oud" and after["LastName"] == "Mens"
    assert after["LastMutationDate"] > before
    # POST with an ID updates
    assert session.post(url + PERSONS, json={"ID": person, "Title": "Dr."}).status_code == 200
    assert emulator.person(person)["Title"] == "Dr."
    assert session.post(url + PERSONS, json={"FirstName": "No last name"}).status_code == 400
    assert session.post(url + CONTACTS, json={"Person": {"ID": person},
                                              "Relation": {"ID": "nope"}}).status_code == 400
    # deleting a person takes its relationships along
    assert session.delete(f"{url}/v1/odata/Relation_Person({person})").status_code == 204
    assert emulator.person(person) is None
    assert session.get(f"{url}{CONTACTS}({contact['ID']})").status_code == 404
    employee = f"{url}/v1/odata/Relationship_Person_Contact_Employee({emulator.employee_id})"
    assert session.delete(employee).status_code == 400


def test_request_budget_answers_429_with_retry_after(emulator):
    emulator.request_budget = 2.0
    session, url = api(emulator)
    statuses = [session.get(url + PERSONS, params={"$top": "1"}) for _ in range(4)]
    throttled = [r for r in statuses if r.status_code == 429]
    assert throttled and float(throttled[0].headers["Retry-After"]) > 0


def test_seed_is_deterministic_and_quick():
    a, b = TribeEmulator(), TribeEmulator()
    a.seed(200, seed=5)
    b.seed(200, seed=5)
    assert a.persons() == b.persons()
    assert a.contacts() == b.contacts()
    assert {lab["Name"] for lab in a.labels()} >= {"Newsletter", "Events"}
    assert all(c["CustomerType"] in "ABC" for c in a.contacts())


def test_unknown_select_and_expand_are_400_even_when_no_row_matches(emulator):
    session = emulator.api_session()
    base = f"{emulator.url}/v1/odata/Relation_Person"
    nothing = "$filter=LastName eq 'nobody at all'"
    assert session.get(f"{base}?{nothing}&$select=ID,FirstName").status_code == 200
    for query, name in (("$select=ID,Nope", "Nope"),
                        ("$expand=Nope", "Nope"),
                        ("$expand=LabelAssignments($expand=Nope)", "Nope"),
                        ("$expand=Labels($select=ID,Nope)", "Nope")):
        r = session.get(f"{base}?{nothing}&{query}")
        assert r.status_code == 400 and name in r.text, (query, r.text)
    pid = emulator.persons()[0]["ID"]
    assert session.get(f"{base}({pid})?$select=Nope").status_code == 400


@pytest.mark.parametrize("label_navs", [["Labels", "LabelAssignments"], ["Labels"],
                                        ["LabelAssignments"], []])
def test_an_account_may_lack_label_navigations(emulator, label_navs):
    emulator.label_navs = label_navs
    session = emulator.api_session()
    base = f"{emulator.url}/v1/odata/Relation_Person"
    for nav in ("Labels", "LabelAssignments"):
        r = session.get(f"{base}?$top=0&$expand={nav}")
        assert r.status_code == (200 if nav in label_navs else 400), (nav, r.text)
    metadata = session.get(f"{emulator.url}/v1/odata/$metadata").text
    assert ('Name="LabelAssignments"' in metadata) == ("LabelAssignments" in label_navs)
