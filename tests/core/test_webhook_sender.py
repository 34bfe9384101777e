"""The emulators' shared webhook sender (syncd.plugin.WebhookSender): a subclass gives the
address and signature; the sender delivers in order, retries non-2xx answers and logs."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
import requests

from syncd.plugin import (
    Emulator,
    Request,
    Router,
    WebhookDelivery,
    WebhookSender,
)
from syncd.testing import WebhookReceiver


class ToySender(WebhookSender):
    """A partner whose webhooks carry ``X-Toy-Digest: sha1(secret + body)``."""

    def __init__(self, base_url: str, **options: Any):
        super().__init__(**options, thread_name="toy-webhooks")
        self.base_url = base_url

    def address(self, target: dict[str, Any], body: bytes) -> WebhookDelivery:
        digest = hashlib.sha1(target["secret"].encode() + body).hexdigest()
        return WebhookDelivery(f"{self.base_url}/hooks/{target['id']}",
                               {"X-Toy-Digest": digest}, {"hook": target["id"]})


@pytest.fixture
def receiver():
    with WebhookReceiver("sender-test-receiver") as rec:
        yield rec


@pytest.fixture
def make_sender(receiver):
    made: list[ToySender] = []

    def make(**options: Any) -> ToySender:
        sender = ToySender(receiver.server.url, **options)
        sender.start()
        made.append(sender)
        return sender

    yield make
    for sender in made:
        sender.stop()


def test_deliveries_leave_in_order_with_the_subclass_address_and_signature(receiver,
                                                                            make_sender):
    sender = make_sender(attempts=1)
    for n in range(5):
        sender.put({"id": f"h{n % 2}", "secret": "s3"}, {"n": n})
    assert sender.wait_idle(10)
    assert [json.loads(body)["n"] for _, body in receiver.received] == [0, 1, 2, 3, 4]
    headers, body = receiver.received[3]
    assert body == b'{"n":3}'  # compact JSON
    assert headers["X-Toy-Digest"] == hashlib.sha1(b"s3" + body).hexdigest()
    entry = sender.log()[3]
    assert entry == {"hook": "h1", "url": f"{receiver.server.url}/hooks/h1", "body": body,
                     "status": 200, "attempts": 1, "delivered": True}
    assert sender.stats() == {"webhooks_delivered": 5, "webhooks_failed": 0,
                              "webhooks_pending": 0}
    assert sender.pending() == 0


def test_a_non_2xx_answer_is_retried_and_a_delivery_fails_after_its_attempts(receiver,
                                                                              make_sender):
    sender = make_sender(attempts=3, backoff=0.01)
    receiver.statuses = [500, 503]  # the third attempt gets through
    sender.put({"id": "a", "secret": "s"}, {"n": 1})
    assert sender.wait_idle(10)
    assert sender.log()[-1]["attempts"] == 3 and sender.log()[-1]["delivered"]
    receiver.statuses = [500, 502, 504]  # all three fail
    sender.put({"id": "b", "secret": "s"}, {"n": 2})
    assert sender.wait_idle(10)
    last = sender.log()[-1]
    assert (last["hook"], last["status"], last["attempts"], last["delivered"]) == \
        ("b", 504, 3, False)
    assert receiver.statuses == [] and len(receiver.received) == 1
    assert sender.stats()["webhooks_failed"] == 1 and sender.delivered == 1



class ToyEmulator(Emulator):
    """A partner that calls a webhook on ``POST /change``."""

    kind = "toy"

    def __init__(self, webhook_base: str | None):
        if webhook_base is not None:
            self.sender = ToySender(webhook_base, attempts=1)
        super().__init__()

    def setup_routes(self, router: Router) -> None:
        router.add("POST", "/change", self._change)

    def _change(self, request: Request) -> dict:
        if self.sender is not None:
            self.sender.put({"id": "h", "secret": "s"}, request.json())
        return {}


def test_the_emulator_base_runs_its_sender_with_the_server(receiver):
    emulator = ToyEmulator(receiver.server.url).start()
    try:
        assert emulator.sender is not None
        requests.post(f"{emulator.url}/change", json={"n": 1}, timeout=5).raise_for_status()
        assert emulator.wait_deliveries(10)
        assert [json.loads(b) for _, b in receiver.received] == [{"n": 1}]
        assert emulator.deliveries()[0]["hook"] == "h"
        assert emulator.stats()["webhooks_delivered"] == 1
    finally:
        emulator.stop()
    assert emulator.sender._thread is None  # stopped with the server


def test_an_emulator_without_a_sender_has_no_deliveries():
    with ToyEmulator(None) as emulator:
        assert emulator.wait_deliveries(0.1) and emulator.deliveries() == []
        assert "webhooks_delivered" not in emulator.stats()
