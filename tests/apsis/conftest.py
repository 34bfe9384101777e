"""Fixtures of the APSIS One tests: a real emulator on port 0 and connectors pointed at it."""

import pytest
from crm_support import crm_emulator
from syncd_apsis.connector import ApsisConnector
from syncd_apsis.emulator import ApsisEmulator


@pytest.fixture
def make_emulator(started):
    """``make_emulator(**emulator kwargs)`` -> a started emulator (seed 1 by default)."""
    return lambda **kwargs: started(ApsisEmulator(**{"seed": 1, **kwargs}))


@pytest.fixture
def emu(make_emulator):
    return make_emulator()


@pytest.fixture
def connect(started):
    """connect(emulator, **options) -> a started ApsisConnector; stopped after the test."""

    def make(emulator, **options):
        config = {**ApsisConnector.sandbox_config(emulator), "backoff": 0.02, **options}
        config.pop("kind")
        return started(ApsisConnector("apsis", config))

    return make



@pytest.fixture
def tribe():
    """A started Tribe emulator (seed 1, 20 contacts, each webhook delivered once)."""
    with crm_emulator("tribe") as emu:
        yield emu


@pytest.fixture
def lime():
    """A started Lime emulator (seed 2, 20 contacts, each webhook delivered once)."""
    with crm_emulator("lime") as emu:
        yield emu
