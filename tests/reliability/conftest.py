"""Fixtures of the reliability tests: an in-process daemon on the memory connector."""

from __future__ import annotations

import pytest
from reliability_support import quiet_logs, start_daemon, stop_daemon


@pytest.fixture
def quiet():
    with quiet_logs():
        yield


@pytest.fixture
def running(tmp_path, quiet):
    r = start_daemon(tmp_path)
    yield r
    stop_daemon(r)
