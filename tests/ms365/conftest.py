"""Fixtures of the Microsoft 365 tests: the identity emulator over TLS (real MSAL runs
against it) and the Graph emulator, both on free loopback ports."""

from __future__ import annotations

import pytest
from syncd_ms365.emulator_graph import GraphEmulator
from syncd_ms365.emulator_identity import IdentityEmulator

CLIENT_ID = "11111111-2222-3333-4444-555555555555"
APP_ID = "99999999-2222-3333-4444-555555555555"
APP_SECRET = "app-secret-value"
USERS = ("anna@contoso.example", "bob@contoso.example")


@pytest.fixture
def identity(tmp_path):
    emu = IdentityEmulator(device_interval=0, cert_dir=str(tmp_path / "certs"))
    for user in USERS:
        emu.add_user(user)
    emu.register_client(CLIENT_ID, redirect_uris=("http://127.0.0.1:8400/ms365/redirect",))
    emu.register_client(APP_ID, APP_SECRET, app_roles={"Contacts.ReadWrite"})
    with emu:
        yield emu


@pytest.fixture
def graph(identity):
    emu = GraphEmulator(identity=identity)
    with emu:
        yield emu


@pytest.fixture
def world(tmp_path, identity, graph):
    from syncd_tribe.emulator import TribeEmulator

    from tests.ms365.link_support import World
    tribe = TribeEmulator(seed=1)
    tribe.start()
    w = World(tribe, identity, graph, tmp_path)
    try:
        yield w
    finally:
        w.close()
        tribe.stop()
