"""sd_notify against a real AF_UNIX datagram socket, as systemd listens."""

from __future__ import annotations

import os
import socket
import time
import uuid

import pytest

from syncd.app import systemd


def receive(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_ready_stopping_watchdog_and_status(notify_socket):
    assert systemd.ready() is True
    assert receive(notify_socket) == "READY=1"
    assert systemd.watchdog() is True
    assert receive(notify_socket) == "WATCHDOG=1"
    assert systemd.status("2 integrations\nrunning") is True
    assert receive(notify_socket) == "STATUS=2 integrations running"
    assert systemd.stopping() is True
    assert receive(notify_socket) == "STOPPING=1"
    assert systemd.notify("ERRNO=5") is True
    assert receive(notify_socket) == "ERRNO=5"


def test_reloading_sends_the_monotonic_time(notify_socket):
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert systemd.reloading() is True
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = receive(notify_socket).split("\n")
    assert first == "RELOADING=1"
    key, _, value = second.partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after


def test_abstract_namespace_socket(monkeypatch):
    name = f"syncd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.ready() is True
        assert receive(sock) == "READY=1"


def test_without_notify_socket_everything_is_a_quiet_no_op(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False
    assert systemd.ready() is False
    assert systemd.reloading() is False
    assert systemd.watchdog() is False


def test_a_socket_nobody_listens_on_is_false_not_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    assert systemd.ready() is False
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    assert systemd.ready() is False


@pytest.mark.parametrize("usec, pid, expected", [
    (None, None, None),
    ("30000000", None, 30.0),
    ("30000000", "self", 30.0),
    ("30000000", "other", None),
    ("30000000", "junk", None),
    ("0", None, None),
    ("soon", None, None),
])
def test_watchdog_interval(monkeypatch, usec, pid, expected):
    for name, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            value = {"self": str(os.getpid()), "other": str(os.getpid() + 1)}.get(value, value)
            monkeypatch.setenv(name, value)
    assert systemd.watchdog_interval() == expected
