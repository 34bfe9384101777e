"""Helpers of the reliability tests: an in-process daemon on the memory connector (real
receiver, admin endpoint, actors and SQLite file), the daemon as a process on the same
connector (through ``syncd.testing``'s launcher), signed webhooks, polling with deadlines."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import requests
import structlog

from syncd import testing
from syncd.records import Record
from syncd.testing import (
    WORLDS,
    DaemonProcess,
    InProcessDaemon,
    World,
    free_port,
    memory_registry,
    memory_webhook,
    plugin_path,
)

HERE = str(Path(__file__).parent)
SECRET = "reliability-webhook-secret"
TRIBE_SECRET = "tribe-webhook-secret-\u00e9"  # a non-ASCII secret: signed as UTF-8


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.02) -> bool:
    """:func:`syncd.testing.wait_for` with this package's longer default timeout."""
    return testing.wait_for(predicate, timeout, interval)


def config_text(world: str, *, state_dir: str = "state", max_body: int = 1_048_576,
                max_attempts: int = 8, stop_timeout: float = 5.0, threads: int = 8,
                log_level: str = "info", receiver_port: int = 0, admin_port: int = 0,
                tribe: bool = False) -> str:
    return f"""
[daemon]
state_dir = "{state_dir}"
stop_timeout = {stop_timeout}
log_level = "{log_level}"

[receiver]
port = {receiver_port}
max_body_bytes = {max_body}
threads = {threads}

[admin]
port = {admin_port}

[connections.crm]
kind = "memory"
world = "{world}"
webhook_secret = "{SECRET}"

[connections.mkt]
kind = "memory"
world = "{world}"

[integrations.main]
source = "crm"
destination = "mkt"
max_attempts = {max_attempts}
[integrations.main.fields]
FirstName = "firstname"
""" + (TRIBE_SECTIONS if tribe else "")


#: A Tribe connection whose API is nowhere (port 9 of loopback): its webhooks reach the real
#: Tribe parser; an integration consumes them, so an accepted one would be queued.
TRIBE_SECTIONS = f"""
[connections.tribe]
kind = "tribe"
base_url = "http://127.0.0.1:9"
token_url = "http://127.0.0.1:9/token"
auth = "token"
token = "not-used"
max_attempts = 1
timeout = 2.0
webhook_secret = "{TRIBE_SECRET}"

[integrations.from_tribe]
source = "tribe"
destination = "mkt"
[integrations.from_tribe.fields]
FirstName = "firstname"
"""


def signed_body(ids, secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    return memory_webhook(ids, secret)


class Running(InProcessDaemon):
    """The daemon in-process on the memory world ``world_name`` (``world``)."""

    def __init__(self, config_path: Path, world_name: str):
        super().__init__(config_path, memory_registry())
        self.world_name, self.world = world_name, WORLDS[world_name]

    def send(self, ids, secret: str = SECRET, connection: str = "crm",
             timeout: float = 10) -> requests.Response:
        """A signed webhook naming ``ids``."""
        return self.post(connection, *signed_body(ids, secret), timeout=timeout)

    def applied(self, record_id: str, value: str) -> bool:
        return self.world.profiles.get(record_id, {}).get("firstname") == value

    def stop(self, timeout: float = 20.0) -> None:
        try:
            super().stop(timeout)
        finally:
            WORLDS.pop(self.world_name, None)


def start_daemon(tmp_path: Path, *, records: int = 10, **config) -> Running:
    """Started; ``stop()`` it (the ``start`` fixture of conftest.py does)."""
    world = World()
    name = f"reliability-{uuid.uuid4().hex}"
    WORLDS[name] = world
    for i in range(records):
        world.put(Record(f"p{i:02d}", fields={"FirstName": f"n{i}"}, email=f"p{i}@x.nl"))
    cfg = tmp_path / "syncd.toml"
    cfg.write_text(config_text(name, **config))
    return Running(cfg, name).start()


class quiet_logs:
    """Drop structlog events below ERROR while the block runs (thousands of rejected webhooks
    would otherwise each print a line), and restore the previous configuration after."""

    def __enter__(self):
        import logging

        self._saved = structlog.get_config()
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
                            cache_logger_on_first_use=False)
        return self

    def __exit__(self, *exc):
        structlog.configure(**self._saved)
        return False


def proc_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def spawn_daemon(daemons, tmp_path: Path, *, records: int = 10, enqueue_delay: float = 0.0,
                 **config) -> DaemonProcess:
    """``syncd run`` as a process (made by the ``daemons`` fixture of ``syncd.testing``, or
    its class) on the memory connector (``memory_plugin.py``), started and ready."""
    name = f"reliability-{uuid.uuid4().hex}"
    cfg = tmp_path / "syncd.toml"
    config.setdefault("log_level", "error")
    config.setdefault("receiver_port", free_port())
    config.setdefault("admin_port", free_port())
    cfg.write_text(config_text(name, **config))
    site = plugin_path(tmp_path, "reliability-memory", {"memory": "memory_plugin"})
    d = daemons(cfg, tmp_path / "daemon.log", pythonpath=os.pathsep.join((site, HERE)),
                env={"RELIABILITY_WORLD": name, "RELIABILITY_RECORDS": str(records),
                     "RELIABILITY_ENQUEUE_DELAY": str(enqueue_delay)})
    d.start().wait_ready(60)
    return d
