"""Fixtures of the daemon tests: the daemon in-process on the memory connector (real receiver,
admin endpoint, actors and SQLite file), through ``syncd.testing``'s ``inprocess_daemons``."""

from __future__ import annotations

import pytest
from daemon_support import GATE, HELD, GatedConnector, write_config, write_gated_config

from syncd.records import Record
from syncd.testing import WORLDS, World, memory_registry


@pytest.fixture
def memory_world_config(tmp_path):
    """``memory_world_config(records=20, record=None, **write_config kwargs)`` -> (world,
    config path, world name): a fresh world holding ``records`` records (``record(i)``, by
    default p00, p01, ... with ``FirstName`` n0, n1, ...); the world is dropped after the
    test (after the daemons: this fixture is set up before ``inprocess_daemons``)."""
    names = []

    def make(records: int = 20, record=None, **config):
        world = World()
        name = f"d-{id(world)}"
        WORLDS[name] = world
        names.append(name)
        for i in range(records):
            world.put(record(i) if record else
                      Record(f"p{i:02d}", fields={"FirstName": f"n{i}"}, email=f"p{i}@x.nl"))
        cfg = tmp_path / "syncd.toml"
        write_config(cfg, name, **config)
        return world, cfg, name

    yield make
    for name in names:
        WORLDS.pop(name, None)


@pytest.fixture
def memory_daemon(memory_world_config, inprocess_daemons):
    """``memory_daemon(records=20, registry=None, **write_config kwargs)`` -> (started
    InProcessDaemon, world, config path, world name)."""

    def make(records: int = 20, registry=None, **config):
        world, cfg, name = memory_world_config(records, **config)
        return inprocess_daemons(cfg, registry or memory_registry()).start(), world, cfg, name

    return make


@pytest.fixture
def running(memory_daemon):
    """(daemon, admin client, world, config path, world name) of a started daemon whose world
    holds 20 records."""
    d, world, cfg, name = memory_daemon()
    return d.daemon, d.client, world, cfg, name


@pytest.fixture
def make_daemon(memory_world_config, inprocess_daemons):
    """(make, world, config path, world name) over a ``gated`` source (5 records p0..p4):
    ``make(ask_timeout=30.0)`` -> (daemon, its thread, admin client), started; GATE is set
    at the end, so that a held start ends."""
    GATE.clear()
    HELD.clear()
    world, cfg, name = memory_world_config(5, record=lambda i: Record(
        f"p{i}", fields={"FirstName": f"n{i}"}, email=f"p{i}@x.nl"))
    write_gated_config(cfg, name)
    registry = memory_registry()
    registry.connectors["gated"] = GatedConnector

    def make(ask_timeout: float = 30.0):
        d = inprocess_daemons(cfg, registry, ask_timeout=ask_timeout).start()
        return d.daemon, d.thread, d.client

    yield make, world, cfg, name
    GATE.set()


@pytest.fixture
def notify_socket(notify_socket, monkeypatch):
    """tests/conftest.py's, with a watchdog interval of 0.2 s (the daemon pings every 0.1 s)."""
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    return notify_socket
