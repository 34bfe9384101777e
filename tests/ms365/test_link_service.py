"""The link as the daemon runs it: the ms365 connection names its Tribe connection (peers),
a linked user gets the initial sync, the receiver's URL gets a subscription per mailbox, and
an Outlook edit notified through the real receiver reaches Tribe without waiting for the
poll interval. A held merge and a user to relink show in the connection's stats."""

from __future__ import annotations

import pytest
from syncd_ms365.connector import Ms365Connector
from syncd_tribe.connector import TribeConnector

from syncd.engine.store import Store
from syncd.testing import wait_for
from syncd.web.receiver import Route, WebhookApp, start_receiver
from tests.ms365.conftest import CLIENT_ID

ANNA = "anna@contoso.example"
STATE = "client-state-for-the-service-test"


@pytest.fixture
def service(world, tmp_path):
    options = {o.name: o.default for o in Ms365Connector.options}
    options.update(authority=world.identity.authority, client_id=CLIENT_ID,
                   ca_bundle=world.identity.ca_bundle,
                   graph_url=f"{world.graph_emu.url}/v1.0", tribe_connection="crm",
                   poll_interval=3600.0, client_state=STATE)
    connector = Ms365Connector("outlook-svc", options)
    connector.state_dir = str(tmp_path / "svc")
    connector.peers = {"crm": ("tribe", TribeConnector.sandbox_config(world.tribe_emu))}
    store = Store(str(tmp_path / "syncd.db"))
    app = WebhookApp(store=store, max_body=65536)
    app.set_routes({"outlook-svc": Route(
        "outlook-svc", Ms365Connector.webhook_parser("outlook-svc", options), (), (),
        Ms365Connector.webhook_handshake("outlook-svc", options))})
    server = start_receiver(app, "127.0.0.1", 0, 4)
    connector.url = f"http://127.0.0.1:{server.port}/webhooks/outlook-svc"
    yield connector
    connector.stop()
    server.stop()
    store.close()


def test_the_daemons_link_follows_tribe_and_brings_outlook_edits_back(world, service):
    world.employee(ANNA)
    key = world.contact(manager=ANNA, LastName="Served", Role="Buyer")
    service.start()
    world.identity.login_as = ANNA
    service.accounts.authorize_device(ANNA, lambda message: None)  # syncd ms365 authorize
    service.ensure_webhook(service.url)  # the daemon at start: wakes the link
    assert wait_for(lambda: key in world.outlook_by_key(ANNA), timeout=20)
    assert wait_for(lambda: len(world.graph_emu.subscriptions.live()) == 1, timeout=20)
    rounds = service.service.rounds
    contact = world.outlook_by_key(ANNA)[key]
    world.patch_outlook(ANNA, contact["id"], {"jobTitle": "Chief Buyer"})  # notified
    assert wait_for(lambda: world.tribe("Relationship_Person_Contact_Standard", key)["Role"]
                    == "Chief Buyer", timeout=20)
    # woken by the notification, not the interval (an hour); the round counts itself after
    # its writes, so the count may follow the write it made
    assert wait_for(lambda: service.service.rounds > rounds, timeout=20)
    stats = service.stats()
    assert stats["link"][ANNA]["pairs"] == {"linked": 1} and stats["attention"] == []


def test_a_removed_subscription_is_made_again_by_the_service(world, service):
    world.employee(ANNA)
    world.contact(manager=ANNA, LastName="Watched")
    service.start()
    world.identity.login_as = ANNA
    service.accounts.authorize_device(ANNA, lambda message: None)
    service.ensure_webhook(service.url)
    subs = world.graph_emu.subscriptions
    assert wait_for(lambda: len(subs.live()) == 1, timeout=20)
    (first,) = subs.live()
    subs.lifecycle(first["id"], "subscriptionRemoved")  # Graph removed it: says so first
    assert wait_for(lambda: [s["id"] for s in subs.live()] not in ([], [first["id"]]),
                    timeout=20)
    assert service.service.pairs.mailbox(ANNA)["subscription"] != first["id"]


def test_later_rounds_read_only_what_tribe_changed(world, service):
    world.employee(ANNA)
    key = world.contact(manager=ANNA, FirstName="Old", LastName="Incremental")
    untouched = world.contact(manager=ANNA, LastName="Untouched")
    service.start()
    world.identity.login_as = ANNA
    service.accounts.authorize_device(ANNA, lambda message: None)
    service.ensure_webhook(service.url)
    assert wait_for(lambda: {key, untouched} <= set(world.outlook_by_key(ANNA)), timeout=20)
    assert wait_for(lambda: service.service.tribe_cursor is not None, timeout=20)
    since = world.tribe_emu.store.now()  # (the service's own cursor reaches back 120 s)
    person = world.people.get(key).person_id
    world.client.update("Relation_Person", person, {"FirstName": "New"})  # the person only
    changed = {r.key for r in world.people.changed_since(since)}
    assert key in changed and untouched not in changed  # reached through its person
    service.service.poll_now()
    assert wait_for(lambda: world.outlook_by_key(ANNA)[key]["givenName"] == "New",
                    timeout=20)
