"""Seed 002 against the emulators, Tribe → Outlook: who is synced (manager, owner, not
former), each field, the connector id on the contact and in syncd's state, never delete."""

from __future__ import annotations

ANNA, BOB = "anna@contoso.example", "bob@contoso.example"
PROP = "String {0b1e2c8e-6f1d-4d5a-9a63-7f3c1a2b9d41} Name TribeRelationId"


def test_who_is_synced_manager_owner_not_former(world):
    for user in (ANNA, BOB):
        world.employee(user)
    managed = world.contact(manager=ANNA, LastName="Managed")
    owned = world.contact(owners=(BOB, ANNA), LastName="Owned")
    former = world.contact(manager=ANNA, former=True, LastName="Former")
    bobs = world.contact(manager=BOB, LastName="Bobs")
    private = world.private(manager=ANNA, FirstName="Petra", EmailAddress="p@home.example")
    link = world.link_user(ANNA)
    link.initial_sync()
    synced = world.outlook_by_key(ANNA)
    assert set(synced) == {managed, owned, private}
    assert former not in synced and bobs not in synced
    assert world.pairs.get(ANNA, managed).remote == synced[managed]["id"]


def test_each_field_reaches_outlook(world):
    world.employee(ANNA)
    key = world.contact(manager=ANNA, Initials="J.", FirstName="Jan", MiddleName="van",
                        LastName="Dijk", BirthDate="1980-02-03", PhoneNumber="+31 20 1",
                        EmailAddress="jan@acme.example", Role="CFO",
                        MobilePhoneNumber="+31 6 2", WorkPhone="+31 20 5")
    pkey = world.private(manager=ANNA, FirstName="Petra", EmailAddress="p@home.example",
                         PhoneNumber="+31 10 3", MobilePhoneNumber="+31 6 4")
    link = world.link_user(ANNA)
    link.initial_sync()
    got = world.outlook_by_key(ANNA)
    c = got[key]
    assert (c["initials"], c["givenName"], c["middleName"], c["surname"]) == \
        ("J.", "Jan", "van", "Dijk")
    assert c["birthday"].startswith("1980-02-03T")
    assert c["emailAddresses"][0]["address"] == "jan@acme.example"
    assert c["jobTitle"] == "CFO" and c["mobilePhone"] == "+31 6 2"
    assert c["businessPhones"] == ["+31 20 5"] and c["homePhones"] == ["+31 20 1"]
    assert c["_ext"][PROP] == key
    p = got[pkey]
    assert p["emailAddresses"][0]["address"] == "p@home.example"
    assert p["homePhones"] == ["+31 10 3"] and p["mobilePhone"] == "+31 6 4"
    # a change in Tribe is applied to the same contact
    world.client.update("Relationship_Person_Contact_Standard", key, {"Role": "CEO"})
    link.tribe_changed([world.people.get(key)])
    after = world.outlook_by_key(ANNA)
    assert after[key]["id"] == c["id"] and after[key]["jobTitle"] == "CEO"
    assert len(world.outlook(ANNA)) == 2


def test_never_delete_and_recreate_after_the_next_tribe_change(world):
    world.employee(ANNA)
    key = world.contact(manager=ANNA, LastName="Keep", EmailAddress="k@acme.example")
    link = world.link_user(ANNA)
    link.initial_sync()
    cid = world.outlook_by_key(ANNA)[key]["id"]
    # former in Tribe: nothing deleted in Outlook
    world.client.update("Relationship_Person_Contact_Standard", key, {"IsFormer": True})
    link.tribe_changed([world.people.get(key)])
    assert key in world.outlook_by_key(ANNA)
    world.client.update("Relationship_Person_Contact_Standard", key, {"IsFormer": False})
    # deleted in Outlook: Tribe keeps it, the pair (connector id) is dropped
    world.graph_emu.store.delete(world.identity.users[ANNA], cid)
    link.catch_up()
    assert world.pairs.get(ANNA, key).state == "unlinked"
    assert world.tribe("Relationship_Person_Contact_Standard", key) is not None
    # ... and comes back after its next change in Tribe
    world.client.update("Relationship_Person_Contact_Standard", key, {"Role": "Back"})
    link.tribe_changed([world.people.get(key)])
    back = world.outlook_by_key(ANNA)[key]
    assert back["id"] != cid and back["jobTitle"] == "Back"


def test_a_new_manager_gets_the_contact_and_the_old_one_keeps_it(world):
    from syncd_ms365.runner import LinkRunner
    for user in (ANNA, BOB):
        world.employee(user)
    key = world.contact(manager=ANNA, LastName="Moving")
    for user in (ANNA, BOB):
        world.link_user(user)
    runner = LinkRunner(world.connector, world.people, world.pairs)
    runner.sync_new_users()
    assert key in world.outlook_by_key(ANNA) and key not in world.outlook_by_key(BOB)
    world.client.update("Relationship_Person_Contact_Standard", key,
                        {"AccountManager": {"ID": world.employees[BOB]}})
    runner.tribe_changed([key])
    assert key in world.outlook_by_key(BOB)
    assert key in world.outlook_by_key(ANNA)  # never deleted


def test_a_private_person_marked_former_is_not_synced_and_nothing_is_deleted(world):
    """Seed 002: an individual (a private person) is synced only while the relationship is
    not marked former, and marking it former never deletes it from Outlook. The person's
    flag is the Tribe emulator's ``person_former_field`` (IsFormer by default)."""
    world.employee(ANNA)
    former = world.private(manager=ANNA, LastName="Gone", IsFormer=True)
    kept = world.private(manager=ANNA, LastName="Kept", IsFormer=False)
    link = world.link_user(ANNA)
    link.initial_sync()
    synced = world.outlook_by_key(ANNA)
    assert set(synced) == {kept}
    world.client.update("Relation_Person", kept, {"IsFormer": True, "FirstName": "Late"})
    link.tribe_changed([world.people.get(kept), world.people.get(former)])
    after = world.outlook_by_key(ANNA)
    assert set(after) == {kept} and after[kept]["id"] == synced[kept]["id"]  # not deleted
    assert after[kept].get("givenName") != "Late"  # a former relationship is not synced
    world.client.update("Relation_Person", former, {"IsFormer": False})
    link.tribe_changed([world.people.get(former)])
    assert set(world.outlook_by_key(ANNA)) == {kept, former}  # no longer former: synced
