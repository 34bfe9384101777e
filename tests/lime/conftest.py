"""Fixtures of the Lime connector tests: a real emulator on a free loopback port, a connector
pointed at it, and a small receiver that records webhook deliveries."""

from __future__ import annotations

import pytest
from syncd_lime.emulator import LimeEmulator

from syncd.testing import WebhookReceiver

SEEDED = 60

#: The emulator's paging switches (apis.md 2.2: max ``_limit`` is a GAP): no cap; a cap
#: answered with next links; a cap answered with short pages and no next link.
PAGING = {
    "uncapped": {},
    "cap+next": {"page_cap": 7, "next_links": True},
    "cap-no-next": {"page_cap": 7, "next_links": False},
}


def lime_config(emulator: LimeEmulator, **overrides) -> dict:
    from syncd_lime.connector import LimeConnector

    config = LimeConnector.sandbox_config(emulator)
    # plain Lime ids as record ids, so that these tests name persons as Lime does; the keys
    # under each key_prefix setting: test_lime_contract.py, test_lime_keys.py
    config.update({"requests_per_second": 0.0, "max_attempts": 4, "key_prefix": ""})
    config.update(overrides)
    return config


@pytest.fixture
def emulator(started):
    emu = LimeEmulator(seed=1, delivery_backoff=0.02, delivery_attempts=4)
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
    from syncd_lime.connector import LimeConnector

    return lambda **overrides: started(LimeConnector("crm", lime_config(emulator, **overrides)))


@pytest.fixture
def connector(make_connector):
    return make_connector()


@pytest.fixture
def receiver():
    with WebhookReceiver("lime-test-receiver") as rec:
        yield rec
