"""Fixtures of the response-data and task tests (helpers in :mod:`responses_support`)."""

from __future__ import annotations

import pytest
from responses_support import start_world


@pytest.fixture
def start(tmp_path, inprocess_daemons):
    """``start(integration=None, persons=40, apsis_kwargs=None)`` -> a World (emulators and the
    daemon, a full sync done); the daemon, then the emulators, are stopped after the test."""
    emulators: list = []
    made: list = []

    def daemons(path):
        made.append(inprocess_daemons(path))
        return made[-1]

    yield lambda *args, **kwargs: start_world(tmp_path, daemons, *args, emulators=emulators,
                                              **kwargs)
    for daemon in made:  # before the emulators it talks to
        daemon.stop()
    for emu in emulators:
        emu.stop()


@pytest.fixture
def world(start):
    return start()
