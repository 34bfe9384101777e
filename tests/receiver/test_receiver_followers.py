"""Connections that follow another (Connector.follows): the receiver hands an accepted
delivery's events to them too, after the answer, with or without integrations fed by it."""

from __future__ import annotations

import threading

import requests
from receiver_support import MAX_BODY, body_of, hmac_parser, sign

from syncd.web.receiver import Route, WebhookApp, start_receiver


def serve(store, route, notify=None):
    told: list[tuple[str, tuple[str, ...], list[str]]] = []
    done = threading.Event()

    def follow(connection, followers, events):
        told.append((connection, followers, [e.record_id for e in events]))
        done.set()

    app = WebhookApp(store=store, max_body=MAX_BODY, notify=notify, follow=follow)
    app.set_routes({"crm": route})
    return start_receiver(app, "127.0.0.1", 0, threads=2), told, done


def post(server, body: bytes) -> requests.Response:
    return requests.post(f"{server.url}/webhooks/crm", data=body, timeout=10,
                         headers={"X-Signature": sign(body), "Content-Type": "application/json"})


def test_followers_get_the_events_of_a_connection_no_integration_consumes(store):
    server, told, done = serve(store, Route("crm", hmac_parser, (), followers=("outlook",)))
    try:
        answer = post(server, body_of([7, 8]))
        assert answer.status_code == 200 and answer.json() == {"accepted": 2}
        assert done.wait(5)
        assert told == [("crm", ("outlook",), ["7", "8"])]
        assert store.pending_count() == 0  # not in the inbox: the follower catches up itself
    finally:
        server.stop()


def test_followers_and_integrations_both_get_a_delivery(store):
    notified = []
    server, told, done = serve(store, Route("crm", hmac_parser, ("to_apsis",),
                                            followers=("outlook",)), notify=notified.append)
    try:
        assert post(server, body_of([1])).json() == {"accepted": 1}
        assert done.wait(5)
        assert store.pending_count("to_apsis") == 1 and told[0][2] == ["1"]
    finally:
        server.stop()


def test_a_connection_whose_integrations_are_disabled_still_feeds_its_followers(store):
    server, told, done = serve(store, Route("crm", hmac_parser, (), disabled=("to_apsis",),
                                            followers=("outlook",)))
    try:
        assert post(server, body_of([3])).status_code == 200
        assert done.wait(5) and told[0][2] == ["3"]
    finally:
        server.stop()

