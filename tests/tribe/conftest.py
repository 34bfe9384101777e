"""Fixtures of the Tribe connector tests: a real emulator on a free loopback port, a connector
pointed at it, and a small receiver that records webhook deliveries."""

from __future__ import annotations

import pytest
from syncd_tribe.connector import TribeConnector
from syncd_tribe.emulator import TribeEmulator

from syncd.testing import WebhookReceiver

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
def emulator(started):
    emu = TribeEmulator(seed=1, delivery_backoff=0.02, delivery_attempts=4)
    emu.seed(SEEDED, seed=1)
    return started(emu)


@pytest.fixture(params=list(PAGING))
def paging(request, emulator):
    """Runs a test once per paging setting of the emulator; gives the setting's name."""
    for key, value in PAGING[request.param].items():
        setattr(emulator, key, value)
    return request.param


@pytest.fixture
def make_connector(emulator, started):
    """``make_connector(**option overrides)`` -> a started connector (stopped after the test)."""
    return lambda **overrides: started(TribeConnector("crm", tribe_config(emulator, **overrides)))


@pytest.fixture
def connector(make_connector):
    return make_connector()


@pytest.fixture
def receiver():
    with WebhookReceiver("tribe-test-receiver") as rec:
        yield rec
