"""The Outlook link in the real daemon (a process, its actors, receiver and SQLite store),
against the Tribe emulator and the Graph and identity emulators over TLS:

- Tribe's webhooks (signed by the emulator's sender, registered by the daemon at start) are
  routed also to the ``ms365`` connection that follows that Tribe connection, so a Tribe
  change reaches Outlook within seconds although the link polls only every hour;
- the link's rounds are runs that ``syncd runs CONNECTION:USER`` lists, ``syncd status``
  shows the link, ``syncd explain CONNECTION:USER RECORD`` shows the Graph calls made for
  a relationship, and ``syncd confirm`` reaches the link.
"""

from __future__ import annotations

import pytest
import tomli_w
from syncd_ms365.auth import Accounts
from syncd_ms365.connector import Ms365Connector
from syncd_tribe.connector import TribeConnector

from syncd.testing import free_port, wait_for
from tests.ms365.conftest import CLIENT_ID

ANNA = "anna@contoso.example"
CONTACTS = "Relationship_Person_Contact_Standard"
LINK = "outlook:" + ANNA

pytestmark = pytest.mark.slow  # the daemon as a process


def test_a_signed_tribe_webhook_reaches_outlook_within_seconds(world, daemons, tmp_path):
    world.employee(ANNA)
    key = world.contact(manager=ANNA, LastName="Hooked", Role="Buyer")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    receiver = free_port()
    outlook = {"authority": world.identity.authority, "client_id": CLIENT_ID,
               "ca_bundle": world.identity.ca_bundle,
               "graph_url": f"{world.graph_emu.url}/v1.0", "tribe_connection": "crm",
               "poll_interval": 3600.0}
    config = {
        "daemon": {"state_dir": str(state), "log_format": "json", "stop_timeout": 10.0},
        "receiver": {"host": "127.0.0.1", "port": receiver,
                     "public_url": f"http://127.0.0.1:{receiver}"},
        "admin": {"host": "127.0.0.1", "port": free_port()},
        "connections": {"crm": TribeConnector.sandbox_config(world.tribe_emu),
                        "outlook": {"kind": "ms365", **outlook}},
    }
    path = tmp_path / "syncd.toml"
    path.write_text(tomli_w.dumps(config))
    # syncd ms365 authorize outlook --user anna@... (the token cache in the state dir)
    options = {o.name: o.default for o in Ms365Connector.options}
    options.update(outlook)
    world.identity.login_as = ANNA
    Accounts("outlook", options, str(state)).authorize_device(ANNA, lambda message: None)

    daemon = daemons(str(path))
    client = daemon.start().wait_ready()
    assert wait_for(lambda: key in world.outlook_by_key(ANNA), timeout=30)

    def runs(kind=None):
        return [r for r in client.runs(LINK, 50) if kind is None or r["kind"] == kind]

    # the first poll found nothing to change: a quiet round, in the status, not a run
    assert wait_for(lambda: client.status()["links"][LINK]["quiet_rounds"] >= 1, timeout=30)
    assert runs("poll") == []
    assert [r["created"] for r in runs("initial_sync")] == [1]
    # the daemon registered its receiver with Tribe; a change there is delivered, signed
    assert wait_for(lambda: world.tribe_emu.webhooks(), timeout=30)
    world.client.update(CONTACTS, key, {"Role": "Head Buyer"})
    assert wait_for(lambda: world.outlook_by_key(ANNA)[key]["jobTitle"] == "Head Buyer",
                    timeout=20)  # the poll is an hour away: the webhook did it
    assert wait_for(lambda: any(r["status"] == "completed" and r["updated"] == 1
                                for r in runs("webhook")), timeout=20)
    # syncd status lists the link; explain shows the Graph write made for the relationship
    status = client.status()
    assert status["links"][LINK]["last_run"] is not None
    assert status["links"][LINK]["stopped"] is None
    story = client.explain(LINK, key)
    calls = [(c["method"], c["path"].split("/contacts")[0])
             for e in story["entries"] if e["kind"] == "answer"
             for c in e["data"].get("calls", ())]
    assert ("PATCH", "/v1.0/me") in calls and ("POST", "/v1.0/$batch") in calls
    assert client.confirm(LINK)["link"] == LINK  # nothing held: a confirm changes nothing
    assert daemon.stop() == 0
