"""Fixtures of the response-data and task tests (helpers in :mod:`responses_support`)."""

from __future__ import annotations

import pytest
from responses_support import start_world


@pytest.fixture
def world(tmp_path):
    w, thread = start_world(tmp_path)
    try:
        yield w
    finally:
        w.daemon.request_stop()
        thread.join(20)
        w.tribe.stop()
        w.apsis.stop()
