"""One test per hook of :mod:`syncd.connectors.hookspecs`, named ``test_hook_<hook>`` (a meta-test checks
that every hook has one)."""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
import types

import pytest

from syncd.connectors import plugins
from syncd.plugin import Capability, Connector, Record, hookimpl


class HookConnector(Connector):
    kind = "hooked"
    capabilities = frozenset({Capability.READ_RECORD})

    def read_record(self, record_id: str) -> Record | None:
        return None


def ep(name: str, value: str) -> importlib.metadata.EntryPoint:
    return importlib.metadata.EntryPoint(name=name, value=value, group="syncd")


@pytest.fixture
def hooked(monkeypatch):
    module = types.ModuleType("hooked_plugin")

    def syncd_connectors():
        return [HookConnector]

    def syncd_cli_commands(subparsers):
        sub = subparsers.add_parser("hooked", help="a plugin's command")
        sub.set_defaults(func=lambda args: 7)

    module.syncd_connectors = hookimpl(syncd_connectors)
    module.syncd_cli_commands = hookimpl(syncd_cli_commands)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return [ep("hooked", "hooked_plugin")]


def test_hook_syncd_connectors_registers_the_connector_classes(hooked):
    registry = plugins.load(hooked)
    assert registry.connector("hooked") is HookConnector
    [status] = registry.plugins
    assert (status.status, status.kinds) == ("loaded", ["hooked"])


def test_hook_syncd_cli_commands_adds_the_plugins_command(hooked):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    assert plugins.add_cli_commands(sub, hooked) == ["hooked"]
    args = parser.parse_args(["hooked"])
    assert args.func(args) == 7
