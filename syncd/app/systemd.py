"""sd_notify without libsystemd: one datagram to ``$NOTIFY_SOCKET`` per state change.

Outside systemd (no ``NOTIFY_SOCKET``) every call is a no-op that returns False, so the
daemon runs the same in a terminal, a container or a test.
"""

from __future__ import annotations

import os
import socket
import time

import structlog

log = structlog.get_logger("syncd.app.systemd")


def _address() -> str | bytes | None:
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return None
    if path.startswith("@"):  # abstract namespace: a leading NUL byte
        return b"\0" + path[1:].encode()
    if path.startswith("/"):
        return path
    return None  # vsock and other transports are not supported


def notify(state: str) -> bool:
    """Send ``state`` (``"READY=1"``, several ``KEY=value`` lines...) to systemd. Returns
    True when it was sent; False without ``NOTIFY_SOCKET`` or when sending failed."""
    address = _address()
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
        return True
    except OSError as exc:
        log.warning("systemd.notify_failed", state=state.split("\n", 1)[0], error=str(exc))
        return False


def ready() -> bool:
    """Start-up (or a reload) is complete."""
    return notify("READY=1")


def reloading() -> bool:
    """A reload begins. ``MONOTONIC_USEC`` is what ``Type=notify-reload`` (systemd 253+)
    expects with it; older systemd ignores it."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")


def stopping() -> bool:
    """Shutdown begins."""
    return notify("STOPPING=1")


def watchdog() -> bool:
    """Keep-alive ping; send it every :func:`watchdog_interval` / 2 seconds."""
    return notify("WATCHDOG=1")


def status(text: str) -> bool:
    """A one-line status shown by ``systemctl status``."""
    return notify("STATUS=" + " ".join(text.splitlines()))


def watchdog_interval() -> float | None:
    """The watchdog timeout in seconds from ``WATCHDOG_USEC``, or None when the watchdog is
    off or meant for another process (``WATCHDOG_PID``). Ping at half of it."""
    raw = os.environ.get("WATCHDOG_USEC")
    if not raw:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    try:
        usec = int(raw)
    except ValueError:
        return None
    return usec / 1_000_000 if usec > 0 else None
