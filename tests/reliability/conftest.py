"""Fixtures of the reliability tests: an in-process daemon on the memory connector."""

from __future__ import annotations

import pytest
from reliability_support import quiet_logs, start_daemon


@pytest.fixture
def quiet():
    with quiet_logs():
        yield


@pytest.fixture
def start(tmp_path, quiet):
    """``start(**config_text kwargs)`` -> a started :class:`reliability_support.Running` in
    ``tmp_path``; every one is stopped after the test."""
    made = []

    def make(**config):
        made.append(start_daemon(tmp_path, **config))
        return made[-1]

    yield make
    for r in made:
        r.stop()


@pytest.fixture
def running(start):
    return start()
