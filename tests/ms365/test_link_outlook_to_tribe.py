"""Seed 002 against the emulators, Outlook → Tribe: only contacts from Tribe, each field to
the contact or the private person, first value only; no echoes; conflicting edits newest
wins; the merge guard; delta catch-up after a gap and after a 410."""

from __future__ import annotations

import pytest

ANNA = "anna@contoso.example"
CONTACTS = "Relationship_Person_Contact_Standard"


@pytest.fixture
def linked(world):
    world.employee(ANNA)
    keys = {
        "contact": world.contact(manager=ANNA, FirstName="Jan", LastName="Dijk",
                                 EmailAddress="jan@acme.example", Role="CFO",
                                 PhoneNumber="+31 20 1", MobilePhoneNumber="+31 6 1"),
        "private": world.private(manager=ANNA, FirstName="Petra", LastName="Vries",
                                 EmailAddress="p@home.example", PhoneNumber="+31 10 3",
                                 MobilePhoneNumber="+31 6 4"),
    }
    link = world.link_user(ANNA)
    link.initial_sync()
    return world, link, keys


def _contact(world, key):
    return world.outlook_by_key(ANNA)[key]


def test_contact_fields_go_to_the_contact_relationship_first_value_only(linked):
    world, link, keys = linked
    key = keys["contact"]
    c = _contact(world, key)
    world.patch_outlook(ANNA, c["id"], {
        "givenName": "Johan", "initials": "J.H.", "middleName": "de", "surname": "Berg",
        "birthday": "1979-05-06T11:59:00Z", "jobTitle": "CTO",
        "emailAddresses": [{"address": "johan@acme.example"}, {"address": "x@other.example"}],
        "businessPhones": ["+31 20 9", "+31 20 8"], "mobilePhone": "+31 6 9"})
    link.catch_up()
    contact = world.tribe(CONTACTS, key)
    person = world.tribe("Relation_Person", world.people.get(key).person_id)
    assert (person["FirstName"], person["Initials"], person["MiddleName"],
            person["LastName"]) == ("Johan", "J.H.", "de", "Berg")
    assert str(person["BirthDate"]).startswith("1979-05-06")
    assert contact["EmailAddress"] == "johan@acme.example"  # the first of two
    assert contact["PhoneNumber"] == "+31 20 9" and contact["MobilePhoneNumber"] == "+31 6 9"
    assert contact["Role"] == "CTO"
    assert person["EmailAddress"] is None  # a contact's e-mail is not the person's


def test_private_fields_go_to_the_person(linked):
    world, link, keys = linked
    key = keys["private"]
    c = _contact(world, key)
    world.patch_outlook(ANNA, c["id"], {
        "emailAddresses": [{"address": "petra@home.example"}],
        "homePhones": ["+31 10 9", "+31 10 8"], "mobilePhone": "+31 6 8"})
    link.catch_up()
    person = world.tribe("Relation_Person", key)
    assert person["EmailAddress"] == "petra@home.example"
    assert person["PhoneNumber"] == "+31 10 9" and person["MobilePhoneNumber"] == "+31 6 8"


def test_contacts_not_from_tribe_stay_in_outlook(linked):
    world, link, keys = linked
    before = world.client.query("Relation_Person", count=True)["@odata.count"]
    world.graph_emu.store.create(world.identity.users[ANNA], {"surname": "Outlook only"})
    link.catch_up()
    assert world.client.query("Relation_Person", count=True)["@odata.count"] == before


def test_own_writes_do_not_come_back(linked):
    world, link, keys = linked
    key = keys["contact"]
    world.client.update(CONTACTS, key, {"Role": "COO"})
    link.tribe_changed([world.people.get(key)])
    mutated = world.tribe(CONTACTS, key)["LastMutationDate"]
    requests_before = world.graph_emu.stats()["requests"]
    link.catch_up()  # the delta shows syncd's own PATCH
    assert world.tribe(CONTACTS, key)["LastMutationDate"] == mutated  # nothing written back
    link.tribe_changed([world.people.get(key)])  # and Tribe's state again: nothing to do
    assert world.graph_emu.stats()["requests"] - requests_before <= 2  # delta + one GET
    assert link.counts["updated_tribe"] == 0


def test_conflicting_edits_newest_wins_and_the_loser_is_logged(linked):
    from structlog.testing import capture_logs
    world, link, keys = linked
    key = keys["contact"]
    c = _contact(world, key)
    world.client.update(CONTACTS, key, {"Role": "Tribe's"})  # older
    world.patch_outlook(ANNA, c["id"], {"jobTitle": "Outlook's"})  # newer
    with capture_logs() as logs:
        link.catch_up()
    assert world.tribe(CONTACTS, key)["Role"] == "Outlook's"
    (conflict,) = [e for e in logs if e["event"] == "ms365.conflict"]
    assert conflict["field"] == "jobTitle" and conflict["lost"] == "tribe"


def test_merge_in_outlook_is_held_and_never_spread(world):
    world.employee(ANNA)
    link = world.link_user(ANNA)
    oid = world.identity.users[ANNA]
    world.graph_emu.store.create(oid, {"givenName": "Gert", "surname": "Dijk",
                                       "jobTitle": "Baker", "mobilePhone": "+31 6 77",
                                       "emailAddresses": [{"address": "shared@x.example"}]})
    world.graph_emu.merge_on_email = True
    key = world.contact(manager=ANNA, FirstName="Petra", LastName="Vries",
                        EmailAddress="shared@x.example")
    link.initial_sync()
    petra = _contact(world, key)
    assert petra["jobTitle"] == "Baker"  # Outlook filled her card from Gert's
    link.catch_up()
    contact = world.tribe(CONTACTS, key)
    assert contact["Role"] is None and contact["MobilePhoneNumber"] is None
    (held,) = world.pairs.held(ANNA)
    assert held.key == key and "shared@x.example" in held.held


def test_delta_catch_up_after_a_gap_and_after_410(linked):
    world, link, keys = linked
    key = keys["contact"]
    c = _contact(world, key)
    world.graph_emu.notifications = False  # a gap: nothing notified
    world.patch_outlook(ANNA, c["id"], {"jobTitle": "During the gap"})
    world.graph_emu.expire_delta()  # and the delta token expired meanwhile
    link.catch_up()
    assert world.tribe(CONTACTS, key)["Role"] == "During the gap"
    world.patch_outlook(ANNA, c["id"], {"jobTitle": "After"})
    link.catch_up()  # the new delta link works
    assert world.tribe(CONTACTS, key)["Role"] == "After"
