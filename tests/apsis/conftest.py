"""Fixtures of the APSIS One tests: a real emulator on port 0 and connectors pointed at it."""

import pytest
from syncd_apsis.connector import ApsisConnector
from syncd_apsis.emulator import ApsisEmulator


@pytest.fixture
def make_emulator():
    started = []

    def make(**kwargs):
        kwargs.setdefault("seed", 1)
        emu = ApsisEmulator(**kwargs).start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


@pytest.fixture
def emu(make_emulator):
    return make_emulator()


@pytest.fixture
def connect():
    """connect(emulator, **options) -> a started ApsisConnector; stopped after the test."""
    made = []

    def make(emulator, **options):
        config = {**ApsisConnector.sandbox_config(emulator), "backoff": 0.02, **options}
        config.pop("kind")
        conn = ApsisConnector("apsis", config)
        conn.start()
        made.append(conn)
        return conn

    yield make
    for conn in made:
        conn.stop()

