"""The ``syncd_cli_commands`` hook: a plugin adds its own ``syncd`` subcommands; a plugin that
raises or takes a core command's name loses its commands, never the CLI."""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
import types

import pytest
from structlog.testing import capture_logs

from syncd.app.cli import build_parser
from syncd.connectors import plugins
from syncd.connectors.hookspecs import hookimpl


def ep(name, value):
    return importlib.metadata.EntryPoint(name=name, value=value, group="syncd")


@pytest.fixture
def fake_modules(monkeypatch):
    def good_hook(subparsers):
        p = subparsers.add_parser("hello", help="say hello")
        p.add_argument("name")
        p.set_defaults(func=lambda args: print(f"hello {args.name}") or 0)

    def clash_hook(subparsers):
        subparsers.add_parser("mine")
        subparsers.add_parser("status")  # the core's

    def raising_hook(subparsers):
        subparsers.add_parser("half")
        raise RuntimeError("boom")

    for name, hook in (("good", good_hook), ("clash", clash_hook), ("raising", raising_hook)):
        module = types.ModuleType(f"fake_cli_{name}")
        module.syncd_cli_commands = hookimpl(hook)
        monkeypatch.setitem(sys.modules, module.__name__, module)


def test_plugins_add_commands_and_broken_ones_lose_only_theirs(fake_modules, capsys):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    sub.add_parser("status")
    with capture_logs() as logs:
        added = plugins.add_cli_commands(sub, [
            ep("good", "fake_cli_good"), ep("clash", "fake_cli_clash"),
            ep("raising", "fake_cli_raising"), ep("missing", "no_such_module_here")])
    assert added == ["hello"]
    assert set(sub.choices) == {"status", "hello"}
    reasons = {e["plugin"]: e["reason"] for e in logs if e["event"] == "plugin.cli_failed"}
    assert "command 'status' is taken" in reasons["clash"]
    assert reasons["raising"] == "RuntimeError: boom" and "missing" in reasons
    args = parser.parse_args(["hello", "world"])
    assert args.func(args) == 0 and capsys.readouterr().out.endswith("hello world\n")


def test_the_real_cli_has_the_ms365_commands_through_the_hook():
    parser = build_parser()
    args = parser.parse_args(["ms365", "users", "outlook"])
    assert args.func.__module__ == "syncd_ms365.cli"
