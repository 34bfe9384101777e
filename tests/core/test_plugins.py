"""Guarded plugin discovery: one broken plugin never stops the others."""

import importlib.metadata
import sys
import types

import pytest

from syncd.connectors import plugins
from syncd.connectors.connector import Capability, Connector
from syncd.connectors.hookspecs import hookimpl


class GoodConnector(Connector):
    kind = "good"
    capabilities = frozenset({Capability.WRITE_PROFILES})

    def write_profiles(self, profiles, known):
        return []


class LyingConnector(Connector):
    kind = "liar"
    capabilities = frozenset({Capability.READ_RECORDS})  # but no read_page / read_records


@pytest.fixture
def fake_modules(monkeypatch):
    good = types.ModuleType("fake_good")
    good.syncd_connectors = hookimpl(lambda: [GoodConnector])
    liar = types.ModuleType("fake_liar")
    liar.syncd_connectors = hookimpl(lambda: [LyingConnector])
    raising = types.ModuleType("fake_raising")

    def boom():
        raise RuntimeError("hook exploded")

    raising.syncd_connectors = hookimpl(boom)
    for m in (good, liar, raising):
        monkeypatch.setitem(sys.modules, m.__name__, m)


def ep(name, value):
    return importlib.metadata.EntryPoint(name=name, value=value, group="syncd")


def test_broken_plugins_are_reported_while_the_others_load(fake_modules):
    registry = plugins.load([
        ep("good", "fake_good"),
        ep("missing", "fake_module_that_does_not_exist"),
        ep("liar", "fake_liar"),
        ep("raising", "fake_raising"),
    ])
    status = {p.name: p for p in registry.plugins}
    assert status["good"].status == "loaded" and registry.connector("good") is GoodConnector
    assert status["missing"].status == "failed"
    assert "import failed" in status["missing"].reason
    assert status["liar"].status == "failed" and "read_page" in status["liar"].reason
    assert status["raising"].status == "failed" and "hook exploded" in status["raising"].reason
    assert registry.connector("liar") is None


def test_first_party_connectors_arrive_through_the_entry_point_group():
    names = {e.name: e.value for e in importlib.metadata.entry_points(group="syncd")}
    assert names.get("tribe") == "syncd_tribe"
    assert names.get("apsis") == "syncd_apsis"
    registry = plugins.load()
    assert {"tribe", "apsis"} <= set(registry.connectors)


def test_core_never_imports_a_connector_package():
    import pathlib
    import re

    root = pathlib.Path(plugins.__file__).parent
    pattern = re.compile(r"^\s*(from|import)\s+syncd_\w+", re.M)
    offenders = [str(p) for p in root.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_every_hook_is_documented_and_prefixed():
    from syncd.connectors import hookspecs

    hooks = [n for n in dir(hookspecs) if n.startswith("syncd_")]
    assert hooks, "no hooks found"
    for name in hooks:
        assert getattr(hookspecs, name).__doc__, f"{name} has no docstring"
