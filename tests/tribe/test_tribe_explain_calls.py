"""The Tribe connector marks the HTTP calls it makes for records (syncd explain): read-backs
(one filtered read for many persons, kept once with all of them) and opt-in labels written
back; a full sync's pages are for no record. Through a real connection actor."""

from __future__ import annotations

import pytest
from syncd_tribe.connector import TribeConnector

from syncd.connectors import calls
from syncd.connectors.connection import ConnectionActor, typed_proxy
from syncd.records import Event
from tests.tribe.conftest import tribe_config


@pytest.fixture
def proxy(emulator):
    ref = ConnectionActor.start(TribeConnector("crm", tribe_config(emulator)))
    yield typed_proxy(ref)
    ref.stop()


def test_read_backs_and_labels_written_back_are_kept_per_record(emulator, proxy):
    first, second = [p["ID"] for p in emulator.persons()[1:3]]
    proxy.read_page(None, 20).get(timeout=30)  # a full sync's page: for no record
    records = proxy.read_records([Event(first), Event(second)]).get(timeout=30)
    assert {r.id for r in records} == {first.lower(), second.lower()}
    made = calls.take(proxy, [first.lower()])
    assert [(e.method, e.status) for e, _ in made] == [("GET", 200), ("GET", 200)]
    persons, contacts = made
    assert set(persons[1]) == {first.lower(), second.lower()}  # one read for both
    assert persons[0].path.startswith("/v1/odata/Relation_Person?")
    assert f"ID eq {first.lower()}" in persons[0].path
    assert "Person/ID eq" in contacts[0].path
    assert [e.path for e, _ in calls.take(proxy, [second.lower()])] == [
        persons[0].path, contacts[0].path]  # the same calls, for the other person too
    assert calls.take(proxy, [first.lower()]) == []

    person = next(p for p in emulator.persons()[1:]
                  if "Newsletter" in {lab["Name"] for lab in p["Labels"]})
    rid = person["ID"].lower()
    result = proxy.write_consents(rid, {"Newsletter": False}).get(timeout=30)
    assert result.outcome == "updated"
    made = calls.take(proxy, [rid])
    assert made[0][0].method == "GET" and rid in made[0][0].path
    assert {e.method for e, _ in made[1:]} & {"DELETE", "PUT", "PATCH"}
    assert all(m == (rid,) for _, m in made)
