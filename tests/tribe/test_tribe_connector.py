"""The Tribe connector against a running emulator: reading, joining, retries, webhooks."""

from __future__ import annotations

import pytest
from syncd_tribe.connector import TribeConnector
from syncd_tribe.paging import PagingError

from syncd.config.schema import Secret
from syncd.exceptions import AuthError, RemoteError, SyncdError
from syncd.records import Event


def read_all(connector, page_size=25, since=None):
    pages, cursor = [], None
    while True:
        page = connector.read_page(cursor, page_size, since=since)
        pages.append(page)
        cursor = page.cursor
        if cursor is None:
            return pages


def test_read_page_joins_contact_organization_and_labels(emulator, connector):
    page = connector.read_page(None, 500)
    last = connector.read_page(page.cursor, 500)  # a short page is not the end: an empty one is
    assert last.records == () and last.cursor is None
    assert page.total == len(emulator.persons()) == len(page.records)
    contacts = {c["Person"]["ID"]: c for c in emulator.contacts()}
    persons = {p["ID"]: p for p in emulator.persons()}
    checked = 0
    for record in page.records:
        person = persons[record.id]
        assert record.fields["FirstName"] == person["FirstName"]
        assert record.fields["BirthDate"] == person["BirthDate"]
        assert record.modified_at == person["LastMutationDate"]
        assert record.labels == {lab["Name"] for lab in person["Labels"]}
        contact = contacts.get(record.id)
        if contact is None:  # the API's own virtual user has no standard contact
            assert not any(k.startswith("Contact.") for k in record.fields)
            continue
        checked += 1
        assert record.fields["Contact.EmailAddress"] == contact["EmailAddress"]
        assert record.fields["Contact.CustomerType"] == contact["CustomerType"]
        assert record.fields["Contact.Organization.Name"] == contact["Relation"]["Name"]
        assert record.email == (contact["EmailAddress"] or person["EmailAddress"])
    assert checked == len(contacts)
    assert any(r.labels for r in page.records)
    custom = [k for k in page.records[1].fields if k.startswith("_") and "__" in k]
    assert custom, "custom fields come through as they are"


def test_full_scan_pages_every_person_once(emulator, make_connector, paging):
    connector = make_connector()
    before = emulator.stats()["requests"]
    pages = read_all(connector, page_size=25)
    ids = [r.id for p in pages for r in p.records]
    assert ids == sorted(p["ID"] for p in emulator.persons())
    assert pages[0].total == len(ids)
    if paging != "uncapped":
        assert max(len(p.records) for p in pages) <= 7
    # one request per page of persons; the only one beyond the minimum is the final empty page
    persons_requests = len(pages)
    assert pages[-1].records == () and all(p.records for p in pages[:-1])
    # 61 persons: 25+25+11 (windows of $top=25, each split 7+7+7+4 by nextLinks), or 7 at a
    # time by $skip, plus the final empty page
    assert len(ids) == 61
    assert persons_requests == {"uncapped": 3, "cap+nextLink": 10,
                                "cap-no-nextLink": 9}[paging] + 1
    assert emulator.stats()["requests"] - before >= persons_requests


def test_short_pages_without_next_link_are_read_to_the_end(emulator, make_connector):
    """Issue 7.1: 2,000 persons, a server capping pages at 100 with no nextLink, $top=200:
    every person is read, $skip advancing by the rows received."""
    emulator.seed(2000, seed=3)
    emulator.server_paging, emulator.next_links = 100, False
    connector = make_connector()
    pages = read_all(connector, page_size=200)
    ids = [r.id for p in pages for r in p.records]
    assert len(ids) == len(set(ids)) == len(emulator.persons()) >= 2000
    assert pages[0].total == len(ids)
    assert len(pages) == -(-len(ids) // 100) + 1  # the only extra request: the empty page


def test_a_server_ignoring_skip_fails_the_read_instead_of_looping(emulator, make_connector):
    emulator.ignore_skip = True
    connector = make_connector()
    before = emulator.stats()["requests"]
    first = connector.read_page(None, 25)
    with pytest.raises(PagingError, match=r"ignores \$skip"):
        connector.read_page(first.cursor, 25)
    assert emulator.stats()["requests"] - before <= 6  # two person pages, their contacts
    # the internal reads (contacts, labels, groups) refuse to loop the same way
    emulator.server_paging = 5
    with pytest.raises(PagingError, match=r"ignores \$skip"):
        list(connector.client.iterate("Relation_Person", page_size=5))


def test_next_links_go_only_to_the_configured_host(emulator, connector, receiver):
    """Issue 8.8: the bearer token must not follow a nextLink to another host (here another
    loopback server, which must receive nothing), scheme or port."""
    connector.check()  # the token is fetched
    before = connector.stats()["requests"]
    for link in (f"{receiver.server.url}/v1/odata/Relation_Person?$skip=5",
                 emulator.url.replace("http://", "https://") + "/v1/odata/Relation_Person",
                 "https://evil.example/v1/odata/Relation_Person",
                 "//evil.example/v1/odata/Relation_Person"):
        with pytest.raises(RemoteError, match="does not send its token elsewhere"):
            connector.client.follow(link)
    assert connector.stats()["requests"] == before and receiver.received == []
    same = connector.client.follow(f"{emulator.url}/v1/odata/Relation_Person?$top=2")
    relative = connector.client.follow("Relation_Person?$top=3")
    assert len(same["value"]) == 2 and len(relative["value"]) == 3


def test_a_next_link_to_another_host_fails_the_page(emulator, connector, monkeypatch):
    evil = "https://evil.example/v1/odata/Relation_Person?$skip=7"
    real = connector.client.query

    def query(entity_set, **kwargs):
        data = real(entity_set, **kwargs)
        return {**data, "@odata.nextLink": evil} if entity_set == "Relation_Person" else data

    monkeypatch.setattr(connector.client, "query", query)
    page = connector.read_page(None, 7)
    with pytest.raises(RemoteError, match="evil.example.*does not send its token elsewhere"):
        connector.read_page(page.cursor, 7)


def test_since_reads_only_what_changed(emulator, connector, paging):
    person = emulator.persons()[10]
    session = emulator.api_session()
    session.put(f"{emulator.url}/v1/odata/Relation_Person({person['ID']})",
                json={"Title": "ir."}).raise_for_status()
    stamp = emulator.person(person["ID"])["LastMutationDate"]
    ids = [r.id for p in read_all(connector, since=stamp) for r in p.records]
    assert ids == [person["ID"]]


def test_several_contacts_choose_current_then_newest(emulator, connector, paging):
    person = emulator.persons()[5]["ID"]
    orgs = [o["ID"] for o in emulator.organizations()[1:4]]
    session = emulator.api_session()
    base = f"{emulator.url}/v1/odata/Relationship_Person_Contact_Standard"
    for org, email, former in ((orgs[0], "newest-but-former@x.nl", True),
                               (orgs[1], "current@x.nl", False)):
        session.post(base, json={"Person": {"ID": person}, "Relation": {"ID": org},
                                 "EmailAddress": email, "IsFormer": former}
                     ).raise_for_status()
    # the former one is touched last: it is the most recent, but former
    former_id = next(c["ID"] for c in emulator.contacts()
                     if c["EmailAddress"] == "newest-but-former@x.nl")
    session.put(f"{base}({former_id})", json={"Role": "Ex"}).raise_for_status()
    [record] = connector.read_records([Event(person)])
    assert record.email == "current@x.nl"
    assert record.fields["Contact.IsFormer"] is False


def test_read_records_resolves_relationships_and_deletions(emulator, connector, paging):
    contact = emulator.contacts()[7]
    person = emulator.persons()[3]["ID"]
    gone = "0a7c3a52-6c1f-4b55-9b0e-2f7d4f1b0fff"
    records = connector.read_records([
        Event(contact["ID"], entity="relationship"), Event(gone, kind="deleted"),
        Event(person, entity="person"), Event("0a7c3a52-6c1f-4b55-9b0e-2f7d4f1b0eee",
                                              entity="relationship")])
    assert [r.id for r in records] == [contact["Person"]["ID"], gone, person]
    assert records[0].fields["Contact.ID"] == contact["ID"]
    assert records[1].deleted and not records[0].deleted and not records[2].deleted


def test_batches_stay_within_url_limits(emulator, connector):
    events = [Event(p["ID"]) for p in emulator.persons()]
    before = emulator.stats()["requests"]
    records = connector.read_records(events)
    assert len(records) == len(events) and not any(r.deleted for r in records)
    # persons and contacts, each in a few chunks: far fewer requests than records
    assert emulator.stats()["requests"] - before <= 6


def test_expired_token_is_refreshed_transparently(emulator, connector):
    connector.read_page(None, 5)
    assert connector.stats()["token_fetches"] == 1
    emulator.tokens.expire_all()
    page = connector.read_page(None, 5)
    assert len(page.records) == 5
    assert connector.stats()["token_fetches"] == 2
    assert emulator.stats()["by_status"].get("401") == 1


def test_429_retry_after_is_honoured(emulator, connector):
    emulator.set_faults(fail_next=[429, 429], retry_after=0.3)
    page = connector.read_page(None, 5)
    assert len(page.records) == 5
    stats = emulator.stats()
    assert stats["by_status"]["429"] == 2
    assert stats["retry_after_violations"] == 0
    assert connector.stats()["retries"] == 2


def test_request_budget_with_concurrency_has_no_violations(emulator, make_connector,
                                                            monkeypatch):
    # small id chunks, so that each page's contacts are read by several threads at once
    monkeypatch.setattr("syncd_tribe.connector.FILTER_BUDGET", 150)
    emulator.request_budget = 20.0
    connector = make_connector(concurrency=4)
    ids = [r.id for p in read_all(connector, page_size=10) for r in p.records]
    assert ids == sorted(p["ID"] for p in emulator.persons())
    stats = emulator.stats()
    assert stats["by_status"].get("429", 0) >= 1
    assert stats["retry_after_violations"] == 0


def test_5xx_is_retried(emulator, connector):
    emulator.set_faults(fail_next=[500, 503, 502])
    assert len(connector.read_page(None, 5).records) == 5
    assert connector.stats()["retries"] == 3


def test_check_and_stats(emulator, connector):
    facts = connector.check()
    assert facts["employee_id"] == emulator.employee_id
    assert set(connector.stats()) == {"requests", "retries", "token_fetches"}


def test_bad_secret_is_reported_without_the_secret(emulator, make_connector):
    connector = make_connector(client_secret="hunter2-not-it")
    with pytest.raises(AuthError) as info:
        connector.read_page(None, 5)
    assert info.value.status == 401
    assert "hunter2" not in str(info.value)
    assert "hunter2" not in repr(connector) and "hunter2" not in repr(connector.opts)


def test_ensure_webhook_is_idempotent(emulator, connector):
    first = connector.ensure_webhook("http://127.0.0.1:9/webhooks/crm")
    second = connector.ensure_webhook("http://127.0.0.1:9/webhooks/crm")
    assert first == second and len(first.split(",")) == 2
    hooks = emulator.webhooks()
    assert sorted(h["entityType"] for h in hooks) == [
        "Relation.Person", "Relationship.Person.Contact.Standard"]
    assert all("secret" not in h for h in hooks)
    connector.ensure_webhook("http://127.0.0.1:9/other")
    assert len(emulator.webhooks()) == 4


def test_ensure_webhook_needs_a_secret(emulator, make_connector):
    connector = make_connector(webhook_secret=None)
    with pytest.raises(SyncdError, match="webhook_secret"):
        connector.ensure_webhook("http://127.0.0.1:9/webhooks/crm")
    assert emulator.webhooks() == []


def test_validate():
    defaults = {o.name: o.default for o in TribeConnector.options}
    assert TribeConnector.validate("crm", {**defaults, "client_id": "x",
                                           "client_secret": Secret("s")}) == []
    problems = TribeConnector.validate("crm", defaults)
    assert any(p.startswith("client_secret: required when auth = \"client_credentials\"")
               and "TRIBE_CLIENT_SECRET" in p for p in problems)
    assert any(p.startswith("client_id:") for p in problems)
    assert TribeConnector.validate("crm", {**defaults, "auth": "token"})[0].startswith("token:")
    assert TribeConnector.validate("crm", {**defaults, "auth": "token",
                                           "token": Secret("t")}) == []


def test_options_are_documented():
    for option in TribeConnector.options:
        assert option.doc and "\n" not in option.doc, option.name
    names = {o.name for o in TribeConnector.options}
    assert {"base_url", "token_url", "auth", "client_id", "client_secret", "token", "scope",
            "webhook_secret", "signature_header", "timeout", "max_attempts",
            "requests_per_second", "concurrency", "person_set", "contact_set", "email_fields",
            "webhook_entity_types", "labels_nav"} <= names
