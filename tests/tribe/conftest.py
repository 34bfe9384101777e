"""Fixtures of the Tribe connector tests: a real emulator on a free loopback port, a connector
pointed at it, and a small receiver that records webhook deliveries."""

from __future__ import annotations

import threading

import pytest
from syncd_tribe.connector import TribeConnector
from syncd_tribe.emulator import TribeEmulator

from syncd.web.wsgi import ServerThread

SEEDED = 60  # persons seeded in the emulator fixture (plus the API's own virtual user)

#: The emulator's paging switches (apis.md 1.5 is a GAP): no cap; a cap answered with
#: nextLinks; a cap answered with short pages only (and @odata.count).
PAGING = {
    "uncapped": {},
    "cap+nextLink": {"server_paging": 7, "next_links": True},
    "cap-no-nextLink": {"server_paging": 7, "next_links": False},
}


def tribe_config(emulator: TribeEmulator, **overrides) -> dict:
    config = TribeConnector.sandbox_config(emulator)
    config.update({"requests_per_second": 0.0, "max_attempts": 6})
    config.update(overrides)
    return config


@pytest.fixture
def emulator():
    emu = TribeEmulator(seed=1, delivery_backoff=0.02, delivery_attempts=4)
    emu.seed(SEEDED, seed=1)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture(params=list(PAGING))
def paging(request, emulator):
    """Runs a test once per paging setting of the emulator; gives the setting's name."""
    for key, value in PAGING[request.param].items():
        setattr(emulator, key, value)
    return request.param


@pytest.fixture
def make_connector(emulator):
    made = []

    def make(**overrides) -> TribeConnector:
        connector = TribeConnector("crm", tribe_config(emulator, **overrides))
        connector.start()
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.stop()


@pytest.fixture
def connector(make_connector):
    return make_connector()


class Receiver:
    """A tiny WSGI app: records (headers, body) of each POST; answers ``statuses`` first."""

    def __init__(self):
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.cond = threading.Condition()
        self.server = ServerThread(self, threads=2, name="tribe-test-receiver")

    def __call__(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items()
                   if k.startswith("HTTP_")}
        with self.cond:
            status = self.statuses.pop(0) if self.statuses else 200
            if status < 300:
                self.received.append((headers, body))
            self.cond.notify_all()
        start_response(f"{status} X", [("Content-Length", "0")])
        return [b""]

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.received) >= count, timeout)

    @property
    def url(self) -> str:
        return f"{self.server.url}/webhooks/crm"


@pytest.fixture
def receiver():
    rec = Receiver()
    rec.server.start()
    try:
        yield rec
    finally:
        rec.server.stop(timeout=2)
