"""Change notifications through the daemon's real receiver (apis.md 4.5): the subscription's
validationToken handshake answered text/plain, clientState checked, lifecycle events; the
subscription renewed by APScheduler before it expires (≤ 4230 minutes)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import requests
from apscheduler.schedulers.background import BackgroundScheduler
from syncd_ms365.connector import Ms365Connector
from syncd_ms365.notifications import SubscriptionKeeper

from syncd.engine.store import Store
from syncd.testing import wait_for
from syncd.web.receiver import Route, WebhookApp, start_receiver

ANNA = "anna@contoso.example"
STATE = "a-client-state-of-some-length"


@pytest.fixture
def receiver(tmp_path):
    store = Store(str(tmp_path / "syncd.db"))
    app = WebhookApp(store=store, max_body=65536)
    config = {"client_state": STATE}
    app.set_routes({"outlook": Route("outlook", Ms365Connector.webhook_parser("outlook", config),
                                     (), (), Ms365Connector.webhook_handshake("outlook",
                                                                              config))})
    server = start_receiver(app, "127.0.0.1", 0, 4)
    yield app, f"http://127.0.0.1:{server.port}/webhooks/outlook"
    server.stop()
    store.close()


@pytest.fixture
def keeper(world, receiver):
    world.employee(ANNA)
    world.link_user(ANNA)
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.start()
    gaps: list[str] = []
    keep = SubscriptionKeeper(world.connector.mailbox, world.pairs, receiver[1], STATE,
                              minutes=4200, renew_before=60, scheduler=scheduler,
                              on_gap=gaps.append)
    keep.gaps = gaps
    yield keep
    if scheduler.running:
        scheduler.shutdown(wait=False)


def test_subscription_through_the_receivers_handshake_and_notifications(world, receiver,
                                                                        keeper):
    app, url = receiver
    keeper.ensure(ANNA)
    (sub,) = world.graph_emu.subscriptions.live()
    assert sub["clientState"] == STATE and sub["notificationUrl"] == url
    world.graph_emu.store.create(world.identity.users[ANNA], {"surname": "New"})
    # two handshakes (notification and lifecycle URL), then the notification
    assert wait_for(lambda: app.stats()["accepted"] >= 3, timeout=10)
    forged = requests.post(url, json={"value": [{"clientState": "guess", "changeType":
                                                 "created", "resourceData": {"id": "x"}}]})
    assert forged.status_code == 401
    assert requests.post(url, params={"validationToken": "a b&c"}).text == "a b&c"


def test_renewal_is_scheduled_before_expiry_and_renews(world, keeper):
    keeper.minutes = 120  # a short first lifetime, so that the renewal visibly extends it
    keeper.ensure(ANNA)
    job = keeper.scheduler.get_job(keeper.job_id(ANNA))
    expires = datetime.fromisoformat(world.pairs.mailbox(ANNA)["expires"])
    assert expires <= datetime.now(timezone.utc) + timedelta(minutes=4230)
    assert abs((job.next_run_time - (expires - timedelta(minutes=60))).total_seconds()) < 2
    keeper.minutes = 4230
    job.func(*job.args)  # the scheduler fires it
    (sub,) = world.graph_emu.subscriptions.live()
    renewed = datetime.fromisoformat(world.pairs.mailbox(ANNA)["expires"])
    assert renewed > expires + timedelta(minutes=4000) and keeper.gaps == []
    assert sub["expirationDateTime"].startswith(renewed.strftime("%Y-%m-%dT%H:%M"))
    job = keeper.scheduler.get_job(keeper.job_id(ANNA))  # and the next renewal is due
    assert abs((job.next_run_time - (renewed - timedelta(minutes=60))).total_seconds()) < 2
    keeper.minutes = 4231
    with pytest.raises(Exception, match="4230"):  # Graph refuses more than 4230 minutes
        keeper.renew(ANNA)


def test_a_lost_subscription_is_recreated_and_the_gap_caught_up(world, keeper):
    keeper.ensure(ANNA)
    sid = world.pairs.mailbox(ANNA)["subscription"]
    world.graph_emu.subscriptions.delete(sid)
    keeper.renew(ANNA)
    assert world.pairs.mailbox(ANNA)["subscription"] != sid and keeper.gaps == [ANNA]
    keeper.lifecycle(ANNA, "missed")
    assert keeper.gaps == [ANNA, ANNA]
    keeper.lifecycle(ANNA, "subscriptionRemoved")
    assert len(world.graph_emu.subscriptions.live()) == 2  # the old one is the emulator's
