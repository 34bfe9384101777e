"""Fixtures of the end-to-end tests: emulators in the test process, the daemon as a process
(``syncd.testing``'s ``daemons`` fixture: every daemon a test starts is stopped in its
teardown, SIGTERM then SIGKILL, whatever the test's outcome).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pytest
from e2e_support import (
    APSIS_CLIENT_SECRET,
    TRIBE_CLIENT_SECRET,
    WEBHOOK_SECRET,
    build_config,
    free_port,
    write_config,
)
from syncd_apsis.emulator import ApsisEmulator
from syncd_tribe.emulator import TribeEmulator

#: Tribe persons seeded per test: small, so that a full sync takes a second or two.
CONTACTS = 200


@dataclass
class Emulators:
    tribe: TribeEmulator
    apsis: ApsisEmulator


@pytest.fixture
def emulators():
    tribe = TribeEmulator(seed=1, threads=8, client_secret=TRIBE_CLIENT_SECRET,
                          webhook_secret=WEBHOOK_SECRET, delivery_backoff=0.1)
    tribe.seed(CONTACTS, seed=1)
    apsis = ApsisEmulator(seed=2, threads=16, client_secret=APSIS_CLIENT_SECRET,
                          requests_per_second=2000.0, per_key_per_second=50.0)
    started = []
    try:
        for emu in (tribe, apsis):
            emu.start()
            started.append(emu)
        yield Emulators(tribe, apsis)
    finally:
        for emu in reversed(started):
            emu.stop()


@pytest.fixture
def setup(tmp_path, emulators, daemons):
    """``setup(**build_config kwargs)`` -> (config_path, config dict, DaemonProcess not yet
    started) with a fresh state directory, free ports and a config pointing at the emulators."""

    def make(pythonpath: str | None = None, **kwargs: Any):
        config = build_config(str(tmp_path / "state"), emulators.tribe, emulators.apsis,
                              receiver_port=free_port(), admin_port=free_port(), **kwargs)
        path = write_config(str(tmp_path / "syncd.toml"), config)
        daemon = daemons(path, os.path.join(tmp_path, "syncd.log"), pythonpath=pythonpath)
        return path, config, daemon

    return make
