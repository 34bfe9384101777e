"""Several linked users: the initial sync on activation, a Tribe change reaching every user
who sees it, token refresh in between, and a revoked consent that stops only that user
(shown in the status) while the others go on."""

from __future__ import annotations

from syncd_ms365.runner import LinkRunner

ANNA, BOB = "anna@contoso.example", "bob@contoso.example"


def test_revoked_consent_stops_one_user_and_the_other_goes_on(world):
    for user in (ANNA, BOB):
        world.employee(user)
    shared = world.contact(manager=ANNA, owners=(BOB,), LastName="Shared")
    world.identity.tokens.lifetime = 60  # every use refreshes through the token cache
    for user in (ANNA, BOB):
        world.link_user(user)
    runner = LinkRunner(world.connector, world.people, world.pairs)
    assert runner.sync_new_users() == [ANNA, BOB]
    assert shared in world.outlook_by_key(ANNA) and shared in world.outlook_by_key(BOB)
    assert runner.sync_new_users() == []  # once per activation
    world.identity.revoke(ANNA)
    world.client.update("Relationship_Person_Contact_Standard", shared, {"Role": "New"})
    runner.tribe_changed([shared])
    assert world.outlook_by_key(BOB)[shared]["jobTitle"] == "New"
    assert world.outlook_by_key(ANNA)[shared]["jobTitle"] is None
    status = runner.status()
    assert status[ANNA]["state"] == "consent_required"
    assert "AADSTS65001" in status[ANNA]["problem"]
    assert status[BOB]["state"] == "linked" and "problem" not in status[BOB]
    # linking again heals it: the change is caught up
    world.link_user(ANNA)
    runner.tribe_changed([shared])
    assert world.outlook_by_key(ANNA)[shared]["jobTitle"] == "New"
    assert "problem" not in runner.status()[ANNA]
