"""Test helpers for syncd and for plugin authors (a pytest plugin, ``pytest11`` entry point).

- :class:`MemoryConnector`: an in-memory source *and* destination, the fake to test the
  core with (no HTTP). Connections of kind ``memory`` that name the same ``world`` share data.
- :func:`memory_registry`: the installed plugins plus the memory connector.
- :func:`wait_for` (a bool) and :func:`wait_until` (the value, or fail naming what): poll a
  condition with a deadline (tests synchronise by them, not sleeps); :func:`free_port`;
- :class:`WebhookReceiver`: records the webhooks an emulator sends (and can answer chosen
  statuses first), for the tests of an emulator's webhook sender;
- fixtures: ``actors`` (stops every pykka actor after the test), ``memory_world``,
  ``daemons`` (the daemon as a process, stopped after the test);
- the daemon as a process (:mod:`syncd.testing.daemon`): :class:`DaemonProcess` runs
  ``syncd run``, waits for its admin endpoint, stops it with SIGTERM or kills it, keeps its
  log; :class:`ChildProcess` for any other program; :func:`syncd_cli` for other commands;
- the daemon in this process (:mod:`syncd.testing.inprocess`): :class:`InProcessDaemon` and
  the ``inprocess_daemons`` fixture; :func:`memory_webhook` signs a memory connector webhook;
- the contract kit (:mod:`syncd.testing.contract`): one contract test class per capability
  and :class:`ConnectorContract` for every connector, which a connector's tests subclass
  with a ``harness`` fixture (a :class:`Harness` over the connector and its emulator).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pykka
import pytest

from syncd.connectors import plugins
from syncd.testing.contract import (
    CONTRACTS,
    BulkWriterContract,
    ConnectorContract,
    ConsentChangeReaderContract,
    ConsentWriterContract,
    DirectReaderContract,
    EngagementReaderContract,
    EngagementWriterContract,
    GroupReaderContract,
    Harness,
    ProfileDeleterContract,
    ProfileReaderContract,
    ProfileWriterContract,
    RecordReaderContract,
    SchemaCheckerContract,
    TaskCreatorContract,
    WebhookSourceContract,
    assert_contracts_cover,
)
from syncd.testing.daemon import (
    ChildProcess,
    DaemonProcess,
    daemon_processes,
    daemons,
    plugin_path,
    pytest_runtest_makereport,
    pytest_unconfigure,
    subprocess_env,
    syncd_cli,
    wait_run,
)
from syncd.testing.inprocess import InProcessDaemon, inprocess_daemons, memory_webhook
from syncd.testing.memory import WORLDS, MemoryConnector, World, sign, world
from syncd.testing.receiver import WebhookReceiver

T = TypeVar("T")

__all__ = [
    "WORLDS", "MemoryConnector", "World", "sign", "world", "wait_for", "wait_until",
    "free_port", "memory_registry", "run_job_to_end",
    "actors", "memory_world", "daemons", "DaemonProcess", "ChildProcess", "syncd_cli",
    "daemon_processes", "plugin_path", "InProcessDaemon", "inprocess_daemons",
    "memory_webhook", "subprocess_env", "wait_run",
    "pytest_runtest_makereport", "pytest_unconfigure", "Harness", "CONTRACTS", "assert_contracts_cover",
    "ConnectorContract", "RecordReaderContract", "WebhookSourceContract",
    "ProfileWriterContract", "ProfileDeleterContract", "ConsentChangeReaderContract",
    "ConsentWriterContract", "GroupReaderContract", "BulkWriterContract",
    "DirectReaderContract", "SchemaCheckerContract", "EngagementReaderContract",
    "EngagementWriterContract", "TaskCreatorContract", "ProfileReaderContract",
    "WebhookReceiver",
]


def wait_for(predicate: Callable[[], object], timeout: float = 10.0,
             interval: float = 0.01) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def run_job_to_end(coordinator: Any, job: str, params: dict[str, Any] | None = None,
                   timeout: float = 30.0) -> None:
    """Tell a coordinator (proxy) to run ``job`` and wait until it and any paged job it
    started (daily creation, overview import: one message per page) have ended."""
    coordinator.run_job(job, params or {}).get(timeout=timeout)
    if not wait_for(lambda: not coordinator.job_running().get(timeout=timeout), timeout):
        raise AssertionError(f"the {job} job did not end within {timeout:.0f} s")


def wait_until(predicate: Callable[[], T | None], timeout: float, what: str,
               interval: float = 0.05) -> T:
    """Poll ``predicate`` until it returns something truthy, and return it; fail naming
    ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port free on loopback now (for configs that must name a real port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def memory_registry() -> plugins.Registry:
    registry = plugins.load()
    registry.connectors["memory"] = MemoryConnector
    return registry


@pytest.fixture
def actors():
    """Stops every actor a test started, even when it fails."""
    yield
    pykka.ActorRegistry.stop_all(block=True, timeout=10)


@pytest.fixture
def memory_world(request):
    """A fresh in-memory world named after the test."""
    name = request.node.nodeid
    WORLDS[name] = World()
    yield name, WORLDS[name]
    WORLDS.pop(name, None)
