"""Helpers of the reliability tests: an in-process daemon on the memory connector (real
receiver, admin endpoint, actors and SQLite file), the daemon as a process on the same
connector (through ``syncd.testing``'s launcher), signed webhooks, polling with deadlines."""

from __future__ import annotations

import json
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import requests
import structlog

from syncd import testing
from syncd.app.admin import AdminClient
from syncd.app.daemon import Daemon
from syncd.records import Record
from syncd.testing import (
    WORLDS,
    DaemonProcess,
    World,
    free_port,
    memory_registry,
    plugin_path,
    sign,
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
    body = json.dumps({"ids": list(ids)}).encode()
    return body, {"X-Memory-Signature": sign(secret, body)}


@dataclass
class Running:
    daemon: Daemon
    thread: threading.Thread
    world: World
    world_name: str
    config_path: Path
    state_dir: Path
    client: AdminClient
    session: requests.Session

    @property
    def url(self) -> str:
        return self.daemon.receiver.url

    @property
    def db_path(self) -> str:
        return str(self.state_dir / "syncd.db")

    def post(self, ids, secret: str = SECRET, connection: str = "crm",
             timeout: float = 10) -> requests.Response:
        body, headers = signed_body(ids, secret)
        return self.session.post(f"{self.url}/webhooks/{connection}", data=body,
                                 headers=headers, timeout=timeout)

    def applied(self, record_id: str, value: str) -> bool:
        return self.world.profiles.get(record_id, {}).get("firstname") == value


def start_daemon(tmp_path: Path, *, records: int = 10, **config) -> Running:
    world = World()
    name = f"reliability-{uuid.uuid4().hex}"
    WORLDS[name] = world
    for i in range(records):
        world.put(Record(f"p{i:02d}", fields={"FirstName": f"n{i}"}, email=f"p{i}@x.nl"))
    cfg = tmp_path / "syncd.toml"
    cfg.write_text(config_text(name, **config))
    daemon = Daemon(str(cfg), registry=memory_registry(), install_signals=False,
                    configure_logging=False)
    thread = threading.Thread(target=daemon.serve, daemon=True, name="daemon-under-test")
    thread.start()
    if not daemon.started.wait(20):
        daemon.request_stop()
        thread.join(10)
        WORLDS.pop(name, None)
        raise RuntimeError("the daemon did not start")
    state = tmp_path / "state"
    token = (state / "admin.token").read_text().strip()
    session = requests.Session()
    session.trust_env = False
    return Running(daemon, thread, world, name, cfg, state,
                   AdminClient("127.0.0.1", daemon.admin.port, token), session)


def stop_daemon(running: Running, timeout: float = 20.0) -> None:
    running.session.close()
    running.client.session.close()
    running.daemon.request_stop()
    running.thread.join(timeout)
    WORLDS.pop(running.world_name, None)
    assert not running.thread.is_alive(), "the daemon did not stop"


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
