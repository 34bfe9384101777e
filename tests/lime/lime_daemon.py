"""An in-process daemon over Lime emulators into one APSIS emulator, restartable on the same
state directory (the Lime daemon tests share it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
import tomli_w
from prometheus_client.parser import text_string_to_metric_families
from syncd_apsis.connector import ApsisConnector
from syncd_lime.connector import LimeConnector

from syncd.app.daemon import Daemon
from syncd.app.sandbox import _free_port
from syncd.testing import InProcessDaemon, wait_for


def lime_config(state_dir: str, apsis: Any, limes: dict[str, tuple[Any, dict[str, Any]]]
                ) -> dict[str, Any]:
    """A config with connection ``marketing`` (APSIS) and, per ``name -> (emulator,
    options)``, Lime connection ``name`` in integration ``name``-sync into it."""
    connections: dict[str, Any] = {"marketing": {**ApsisConnector.sandbox_config(apsis),
                                                 "requests_per_second": 100.0}}
    integrations = {}
    for name, (emu, options) in limes.items():
        connections[name] = {**LimeConnector.sandbox_config(emu), **options}
        integrations[f"{name}-sync"] = {"source": name, "destination": "marketing",
                                        **LimeConnector.sandbox_rules()}
    receiver = _free_port()
    return {
        "daemon": {"state_dir": state_dir, "log_level": "info", "log_format": "json",
                   "stop_timeout": 10.0},
        "receiver": {"host": "127.0.0.1", "port": receiver,
                     "public_url": f"http://127.0.0.1:{receiver}"},
        "admin": {"host": "127.0.0.1", "port": _free_port()},
        "connections": connections,
        "integrations": integrations,
    }


def write_config(path: str, config: dict[str, Any]) -> str:
    with open(path, "wb") as fh:
        tomli_w.dump(config, fh)
    return path


@contextmanager
def running(path: str) -> Iterator[Daemon]:
    """The daemon of config ``path``, started and ready; stopped on leaving."""
    d = InProcessDaemon(path).start(30)
    try:
        yield d.daemon
    finally:
        d.stop(30)


def scrape(daemon: Daemon) -> dict[tuple[str, tuple], float]:
    """``/metrics`` of the daemon's admin listener: ``(name, labels) -> value``."""
    port = daemon.config.admin.port
    r = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    r.raise_for_status()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def full_sync(daemon: Daemon, integration: str, timeout: float = 120) -> dict[str, Any]:
    run_id = daemon.control.start_sync(integration)["run_id"]
    assert wait_for(lambda: daemon.control.run(run_id)["status"] != "running", timeout)
    run = daemon.control.run(run_id)
    assert run["status"] == "completed" and run["failed"] == 0, run
    return run


def settle(daemon: Daemon, integration: str) -> None:
    """Wait until the integration's inbox is applied and its coordinator is idle."""
    assert wait_for(lambda: daemon.store.pending_count(integration) == 0, 30)
    daemon.supervisor.coordinator(integration).ping().get(timeout=30)
