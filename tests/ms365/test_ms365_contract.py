"""The ms365 connector passes the contract kit of what it declares (every connector, and
PARSE_WEBHOOKS for Graph's change notifications), against the identity and Graph emulators.

Graph signs no body (apis.md 4.5: authenticity is the ``clientState`` each notification
echoes), so the kit's two signature tests are restated for it: a delivery whose clientState
was changed, and one that carries none, are refused."""

from __future__ import annotations

import json

import pytest
from syncd_ms365.connector import Ms365Connector

from syncd.plugin import Secret, WebhookRejected
from syncd.testing import (
    ConnectorContract,
    Harness,
    WebhookSourceContract,
    assert_contracts_cover,
)
from tests.ms365.conftest import CLIENT_ID

ANNA = "anna@contoso.example"
STATE = "contract-client-state-3f9a"


class Ms365Harness(Harness):
    def exercise(self):
        return self.connector.mailbox.linked(ANNA)  # one Graph request for a linked user

    def source_ids(self) -> list[str]:
        return ["AAMkADcontact-one", "AAMkADcontact-two"]

    def webhook(self, record_id: str, state: str | None = STATE) -> tuple[dict, bytes]:
        note = {"subscriptionId": "sub-1", "changeType": "updated",
                "resource": f"Users/x/Contacts/{record_id}",
                "resourceData": {"id": record_id}, "tenantId": "t"}
        if state is not None:
            note["clientState"] = state
        return {"Content-Type": "application/json"}, json.dumps({"value": [note]}).encode()


class TestMs365Contract(ConnectorContract, WebhookSourceContract):
    @pytest.fixture
    def harness(self, identity, graph, tmp_path):
        options = {o.name: o.default for o in Ms365Connector.options}
        options.update(authority=identity.authority, client_id=CLIENT_ID,
                       ca_bundle=identity.ca_bundle, graph_url=f"{graph.url}/v1.0",
                       max_attempts=2, client_state=Secret(STATE))
        connector = Ms365Connector("outlook", options)
        connector.state_dir = str(tmp_path)
        connector.start()
        identity.login_as = ANNA
        connector.accounts.authorize_device(ANNA, lambda message: None)
        yield Ms365Harness(connector, graph, secrets=(STATE,))
        connector.stop()

    def test_a_tampered_body_is_rejected(self, harness):
        _, body = harness.webhook("AAMkADcontact-one", state=STATE[:-1] + "x")
        with pytest.raises(WebhookRejected) as info:
            self.parser(harness)({}, body)
        assert info.value.status == 401 and STATE not in str(info.value)

    def test_an_unsigned_delivery_is_rejected(self, harness):
        _, body = harness.webhook("AAMkADcontact-one", state=None)
        with pytest.raises(WebhookRejected) as info:
            self.parser(harness)({}, body)
        assert STATE not in str(info.value)


def test_the_contracts_cover_every_capability_of_the_ms365_connector():
    assert_contracts_cover(Ms365Connector, [TestMs365Contract])
