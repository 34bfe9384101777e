"""A real store on a tmp_path SQLite file and a real waitress server for receiver tests."""

from __future__ import annotations

import pytest
from receiver_support import MAX_BODY, Notified, hmac_parser

from syncd.web.receiver import Route, WebhookApp, start_receiver


@pytest.fixture
def notified(store):
    return Notified(store)


@pytest.fixture
def app(store, notified):
    a = WebhookApp(store=store, max_body=MAX_BODY, notify=notified)
    a.set_routes({"crm": Route("crm", hmac_parser, ("to_apsis", "to_outlook"))})
    return a


@pytest.fixture
def server(app):
    srv = start_receiver(app, "127.0.0.1", 0, threads=4)
    yield srv
    srv.stop()
