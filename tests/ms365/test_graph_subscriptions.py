"""Subscriptions of the Graph emulator (apis.md 4.5): the validationToken handshake, the
4230-minute limit on create and renew, notifications with clientState, lifecycle events."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs

import pytest

from syncd.testing import wait_for
from syncd.web.wsgi import ServerThread
from tests.ms365.ms365_support import delegated_token, session

ANNA = "anna@contoso.example"


class Receiver:
    """Answers the handshake as told and records notifications."""

    def __init__(self):
        self.mode = "echo"  # "echo" | "json" | "wrong" | "slow"
        self.release = threading.Event()
        self.received: list[dict] = []
        self.fail_next = 0
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        token = parse_qs(environ.get("QUERY_STRING", "")).get("validationToken")
        if token:
            if self.mode == "slow":  # answers only once the test releases it
                self.release.wait(5)
            if self.mode in ("echo", "slow"):
                start_response("200 OK", [("Content-Type", "text/plain")])
                return [token[0].encode()]
            body = json.dumps(token[0]).encode() if self.mode == "json" else b"nope"
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length))
        with self.lock:
            if self.fail_next:
                self.fail_next -= 1
                start_response("503 Service Unavailable", [])
                return [b""]
            self.received.append(body)
        start_response("202 Accepted", [])
        return [b""]


@pytest.fixture
def receiver():
    app = Receiver()
    server = ServerThread(app, threads=4).start()
    app.url = server.url + "/hook"
    yield app
    server.stop()


def _expiry(minutes: float) -> str:
    return (datetime.now(timezone.utc) + timedelta(minutes=minutes)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def _body(receiver, minutes=60.0, **extra):
    return {"changeType": "created,updated,deleted", "notificationUrl": receiver.url,
            "resource": "me/contacts", "expirationDateTime": _expiry(minutes),
            "clientState": "s3cret", **extra}


def test_handshake_must_echo_the_token_as_text_plain(graph, identity, receiver):
    anna = session(delegated_token(identity, ANNA))
    url = f"{graph.url}/v1.0/subscriptions"
    for mode in ("json", "wrong"):
        receiver.mode = mode
        answer = anna.post(url, json=_body(receiver))
        assert answer.status_code == 400, mode
        assert "validation" in answer.json()["error"]["message"].lower()
    assert graph.subscriptions.live() == []
    receiver.mode = "echo"
    created = anna.post(url, json=_body(receiver))
    assert created.status_code == 201
    assert created.json()["clientState"] == "s3cret"


def test_lifetime_limit_on_create_and_renew(graph, identity, receiver):
    anna = session(delegated_token(identity, ANNA))
    url = f"{graph.url}/v1.0/subscriptions"
    assert anna.post(url, json=_body(receiver, 4231)).status_code == 400
    sub = anna.post(url, json=_body(receiver, 4229)).json()
    renewed = anna.patch(f"{url}/{sub['id']}", json={"expirationDateTime": _expiry(4200)})
    assert renewed.status_code == 200
    assert anna.patch(f"{url}/{sub['id']}",
                      json={"expirationDateTime": _expiry(4300)}).status_code == 400
    graph.subscriptions.clock_offset = 4201 * 60  # the subscription ran out
    assert anna.patch(f"{url}/{sub['id']}",
                      json={"expirationDateTime": _expiry(4300)}).status_code == 404


def test_changes_are_notified_with_client_state_and_retried(graph, identity, receiver):
    anna = session(delegated_token(identity, ANNA))
    sub = anna.post(f"{graph.url}/v1.0/subscriptions", json=_body(receiver)).json()
    receiver.fail_next = 1  # the first delivery fails: Graph retries it
    cid = anna.post(f"{graph.url}/v1.0/me/contacts", json={"surname": "N"}).json()["id"]
    wait_for(lambda: receiver.received, timeout=10)
    note = receiver.received[0]["value"][0]
    assert note["subscriptionId"] == sub["id"] and note["clientState"] == "s3cret"
    assert note["changeType"] == "created" and note["resourceData"]["id"] == cid
    graph.subscriptions.lifecycle(sub["id"], "missed")
    wait_for(lambda: len(receiver.received) == 2, timeout=10)
    assert receiver.received[1]["value"][0]["lifecycleEvent"] == "missed"
    graph.notifications = False  # a gap: nothing is notified
    anna.patch(f"{graph.url}/v1.0/me/contacts/{cid}", json={"surname": "M"})
    graph.subscriptions.lifecycle(sub["id"], "subscriptionRemoved")
    wait_for(lambda: len(receiver.received) == 3, timeout=10)
    assert graph.subscriptions.live() == []


def test_switch_http_notification_urls(graph, identity, receiver):
    anna = session(delegated_token(identity, ANNA))
    graph.allow_http_loopback = False  # the documented rule: https only
    answer = anna.post(f"{graph.url}/v1.0/subscriptions", json=_body(receiver))
    assert answer.status_code == 400 and "https" in answer.json()["error"]["message"]
    graph.allow_http_loopback = True
    assert anna.post(f"{graph.url}/v1.0/subscriptions", json=_body(receiver)).status_code \
        == 201


def test_a_slow_handshake_fails_the_creation(graph, identity, receiver):
    anna = session(delegated_token(identity, ANNA))
    graph.subscriptions.handshake_timeout = 0.2  # stands for Graph's 10 s
    receiver.mode = "slow"
    answer = anna.post(f"{graph.url}/v1.0/subscriptions", json=_body(receiver))
    assert answer.status_code == 400 and graph.subscriptions.live() == []
    receiver.release.set()
