"""Fixtures of the chaos tests: emulators in the test process, the daemon as a process that
the tests kill at will (``syncd.testing``'s ``daemons``). Everything a test starts is stopped in teardown, whatever happened."""

from __future__ import annotations

import os
from typing import Any

import pytest
from chaos_support import (
    APSIS_CLIENT_SECRET,
    TRIBE_CLIENT_SECRET,
    WEBHOOK_SECRET,
    build_config,
    free_port,
    write_config,
)
from syncd_apsis.emulator import ApsisEmulator
from syncd_tribe.emulator import TribeEmulator

from syncd.testing import DaemonProcess


@pytest.fixture
def chaos(tmp_path, daemons):
    """``chaos(contacts, tribe={emulator kwargs}, apsis={emulator kwargs},
    tribe_options={connection options}, **build_config kwargs)`` ->
    (tribe, apsis, config_path, DaemonProcess not yet started)."""
    started: list[Any] = []
    made: list[DaemonProcess] = []

    def make(contacts: int, *, tribe: dict | None = None, apsis: dict | None = None,
             tribe_options: dict | None = None, **config_kwargs: Any):
        t = TribeEmulator(**{"seed": 1, "threads": 8, "client_secret": TRIBE_CLIENT_SECRET,
                             "webhook_secret": WEBHOOK_SECRET, **(tribe or {})})
        t.seed(contacts, seed=1)
        a = ApsisEmulator(**{"seed": 2, "threads": 16, "client_secret": APSIS_CLIENT_SECRET,
                             "requests_per_second": 2000.0, "per_key_per_second": 50.0,
                             # a daemon restarted 20 times a minute asks for 20 tokens: over
                             # APSIS' 10 a minute, which would hold syncd for up to a minute
                             "token_limit_per_minute": 1000,
                             **(apsis or {})})
        for emu in (t, a):
            emu.start()
            started.append(emu)
        config = build_config(str(tmp_path / "state"), t, a, receiver_port=free_port(),
                              admin_port=free_port(), **config_kwargs)
        config["connections"]["tribe"].update(tribe_options or {})
        path = write_config(str(tmp_path / "syncd.toml"), config)
        made.append(daemons(path, os.path.join(tmp_path, "syncd.log")))
        return t, a, path, made[-1]

    try:
        yield make
    finally:
        for daemon in made:  # before the emulators it talks to
            daemon.stop(timeout=10)
        for emu in reversed(started):
            emu.set_faults(error_rate=0.0, throttle_rate=0.0, hang_rate=0.0, latency=0.0)
            emu.stop()
