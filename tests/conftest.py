"""Fixtures shared by the test folders (helpers for plugin authors too live in
``syncd.testing``; this file holds the ones only syncd's own tests use)."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile

import pytest

from syncd.engine.store import Store


@pytest.fixture
def notify_socket(monkeypatch):
    """A datagram socket standing in for systemd's notify socket (``NOTIFY_SOCKET`` names it;
    a short path: AF_UNIX paths are limited to 108 bytes); reads time out after 10 s."""
    directory = tempfile.mkdtemp(prefix="sdn-")
    path = os.path.join(directory, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield sock
    sock.close()
    shutil.rmtree(directory)


@pytest.fixture
def started():
    """``started(thing)`` -> ``thing`` (an emulator, a connector) after ``thing.start()``;
    everything started is stopped after the test, the last started first."""
    things = []

    def start(thing):
        thing.start()
        things.append(thing)
        return thing

    yield start
    for thing in reversed(things):
        thing.stop()


@pytest.fixture
def store(tmp_path):
    """A state store on a fresh SQLite file (closed after the test)."""
    s = Store(str(tmp_path / "syncd.db"))
    yield s
    s.close()
