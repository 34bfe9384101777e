"""The Lime connector against the emulator: records with company fields and consents (the
newest per type wins, read strictly), under every paging setting; what is read follows the
needs; overviews; daily creation's filter; consents written back without deleting any."""

from __future__ import annotations

import datetime as dt

from syncd_lime.consents import ConsentDataError

from syncd.plugin import Need, NeedKind, SchemaNeeds
from tests.lime.conftest import SEEDED


def needs(*items: tuple[NeedKind, str]) -> SchemaNeeds:
    return SchemaNeeds("source", tuple(Need(k, n, f"integrations.x.{n}") for k, n in items))


def expected_labels(emulator, pid: int) -> set[str]:
    """The titles whose newest consent (by date) is approved, from the emulator's store."""
    types = {t["_id"]: t["title"] for t in emulator.store.objects["consenttype"].values()}
    newest: dict[int, dict] = {}
    for c in emulator.consents_of(pid):
        if c["consenttype"] is None:
            continue
        prev = newest.get(c["consenttype"])
        if prev is None or dt.datetime.fromisoformat(c["date"]) > \
                dt.datetime.fromisoformat(prev["date"]):
            newest[c["consenttype"]] = c
    return {types[t] for t, c in newest.items() if c["approved"]}


def read_all(connector, page_size=20):
    records, cursor = [], None
    while True:
        page = connector.read_page(cursor, page_size)
        records.extend(page.records)
        if page.cursor is None:
            return records
        cursor = page.cursor


def test_full_read_with_company_fields_and_newest_consents(emulator, connector, paging):
    records = read_all(connector)
    assert len(records) == SEEDED and len({r.id for r in records}) == SEEDED
    store = emulator.store.objects
    for record in records:
        person = store["person"][int(record.id)]
        assert record.email == person["email"]
        assert record.fields["firstname"] == person["firstname"]
        if person["company"] is not None:
            assert record.fields["company.name"] == store["company"][person["company"]]["name"]
        assert set(record.labels) == expected_labels(emulator, int(record.id)), record.id
        assert record.error is None
    # the seed has persons whose older consent of a type says otherwise than the newer one
    assert any(len({c["consenttype"] for c in emulator.consents_of(int(r.id))})
               < len(emulator.consents_of(int(r.id))) for r in records)


def test_reads_only_what_the_needs_name(emulator, connector):
    connector.set_needs(needs((NeedKind.FIELD, "firstname")))
    emulator.reset_stats()
    records = read_all(connector, page_size=100)
    paths = {p for _, _, p, _ in emulator.requests}
    assert not any("/consent/" in p or "/company/" in p for p in paths)
    assert all(not r.labels and "company.name" not in r.fields for r in records)
    assert connector.wanted_events() == ["person.new", "person.update", "person.delete",
                                         "person.restore"]
    connector.set_needs(needs((NeedKind.FIELD, "company.name"), (NeedKind.LABEL, "Newsletter")))
    assert "company.update" in connector.wanted_events()
    assert "consent.new" in connector.wanted_events()


def test_a_consent_without_approved_is_an_error_never_no_consent(emulator, connector):
    consent = next(c for c in emulator.store.objects["consent"].values() if c["approved"])
    consent["approved"] = None
    [record] = [r for r in read_all(connector, 100) if r.id == str(consent["person"])]
    assert record.error and "approved" in record.error
    assert not record.labels


def test_overviews_are_lime_filters(emulator, make_connector):
    connector = make_connector(groups={"CEOs of A": "customertype=A&position=CEO"})
    want = sorted(str(o["_id"]) for o in emulator.store.objects["person"].values()
                  if o["customertype"] == "A" and o["position"] == "CEO")
    assert sorted(connector.read_group("CEOs of A")) == want and want


def test_daily_creation_reads_what_changed_since(emulator, connector):
    since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    emulator.update("person", 1003, {"firstname": "Changed"})
    page = connector.read_page(None, 50, since=since)
    assert [r.id for r in page.records] == ["1003"]


def test_opt_out_written_back_as_approved_false_never_deleted(emulator, connector):
    pid, consent = next((c["person"], c) for c in emulator.store.objects["consent"].values()
                        if c["approved"] and len(emulator.consents_of(c["person"])) == 1)
    title = emulator.store.objects["consenttype"][consent["consenttype"]]["title"]
    before = len(emulator.store.objects["consent"])
    result = connector.write_consents(str(pid), {title: False})
    assert result.outcome == "updated"
    assert emulator.store.objects["consent"][consent["_id"]]["approved"] is False
    assert len(emulator.store.objects["consent"]) == before  # none deleted, none created
    assert connector.write_consents(str(pid), {title: False}).outcome == "unchanged"
    assert title not in connector.read_record(str(pid)).labels


def test_opt_out_creates_a_consent_only_when_none_exists_for_the_type(emulator, connector):
    types = {t["title"]: t["_id"] for t in emulator.store.objects["consenttype"].values()}
    pid = next(p for p in emulator.store.objects["person"]
               if not any(c["consenttype"] == types["Events"] for c in emulator.consents_of(p)))
    assert connector.write_consents(str(pid), {"Events": False}).outcome == "updated"
    [made] = [c for c in emulator.consents_of(pid) if c["consenttype"] == types["Events"]]
    assert made["approved"] is False and made["person"] == pid
    assert connector.write_consents(str(pid), {"Events": True}).outcome == "updated"
    [again] = [c for c in emulator.consents_of(pid) if c["consenttype"] == types["Events"]]
    assert again["_id"] == made["_id"] and again["approved"] is True


def test_write_consents_unknown_type_or_person_fails_without_writing(emulator, connector):
    before = len(emulator.store.objects["consent"])
    result = connector.write_consents("1001", {"No such type": False})
    assert result.outcome == "failed" and not result.retryable and "No such type" in result.reason
    assert connector.write_consents("999999", {"Newsletter": False}).outcome == "failed"
    assert len(emulator.store.objects["consent"]) == before


def test_consent_data_error_names_the_problem(connector):
    try:
        connector.consent_labels([{"_id": 1, "approved": "yes", "consenttype": 1001,
                                   "date": "2025-01-01T00:00:00+00:00"}])
    except ConsentDataError as exc:
        assert "yes/no" in str(exc)
    else:
        raise AssertionError("a malformed consent must not read as no consent")


def test_companies_are_read_in_ranges_or_one_by_one(emulator, make_connector, paging):
    wanted = {"firstname": "x", "company.name": "y"}
    for system_filters in (True, False):
        emulator.system_filters = system_filters
        connector = make_connector()
        connector.set_needs(needs(*((NeedKind.FIELD, f) for f in wanted)))
        emulator.reset_stats()
        records = read_all(connector, page_size=30)
        store = emulator.store.objects
        for record in records:
            company = store["person"][int(record.id)]["company"]
            if company is not None:
                assert record.fields["company.name"] == store["company"][company]["name"]
        company_gets = sum(1 for _, m, p, _ in emulator.requests
                           if m == "GET" and "/limeobject/company/" in p)
        named = {o["company"] for o in store["person"].values() if o["company"]}
        if system_filters:  # a few range lists instead of one GET per company
            assert company_gets < len(named), company_gets
        else:  # the 400 once, then one GET each
            assert company_gets >= len(named)


def test_consents_without_relation_ranges_are_read_person_by_person(emulator, connector):
    emulator.relation_ranges = False  # min-person= answered 400
    records = read_all(connector, page_size=30)
    assert all(set(r.labels) == expected_labels(emulator, int(r.id)) for r in records)
    assert all(r.error is None for r in records)
    bad = [p for _, m, p, s in emulator.requests if "/consent/" in p and s == 400]
    assert len(bad) == 1  # refused once, then not asked again
