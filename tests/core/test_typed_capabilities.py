"""Capabilities are typed protocols, called by the core through the connection actor's typed
proxy: no method name travels as a string, and an undeclared capability is refused."""

from __future__ import annotations

import ast
import pathlib

import pykka
import pytest

from syncd.connectors.capabilities import PROTOCOLS, REQUIRED_METHODS, Capability, CapabilityMissing
from syncd.connectors.connection import ConnectionActor, ConnectionProxy, typed_proxy
from syncd.records import Event, Profile
from syncd.testing import MemoryConnector

SYNCD = pathlib.Path(__file__).resolve().parents[2] / "syncd"


class WriteOnly(MemoryConnector):
    kind = "write-only"
    capabilities = frozenset({Capability.WRITE_PROFILES})


def string_calls(source: str) -> list[str]:
    """Calls that name a method in a string: ``x.call("name", ...)`` and
    ``getattr(x, "name")(...)``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func, args = node.func, node.args
        if isinstance(func, ast.Attribute) and func.attr == "call" and args \
                and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str):
            found.append(f"call({args[0].value!r})")
        if isinstance(func, ast.Call) and isinstance(func.func, ast.Name) \
                and func.func.id == "getattr":
            found.append(ast.unparse(func))
    return found


def test_the_core_calls_no_method_by_a_string():
    offenders = {str(p.relative_to(SYNCD)): string_calls(p.read_text())
                 for p in sorted(SYNCD.rglob("*.py"))}
    assert {k: v for k, v in offenders.items() if v} == {}
    assert not hasattr(ConnectionActor, "call")


def test_the_check_sees_a_string_call():
    found = string_calls('p.call("bulk_write", x).get()\ngetattr(c, "read_group")(n)\n')
    assert sorted(found) == ["call('bulk_write')", "getattr(c, 'read_group')"]


def test_every_capability_has_a_protocol_and_the_proxy_types_each_method():
    assert set(PROTOCOLS) == set(Capability)
    for capability, methods in REQUIRED_METHODS.items():
        assert methods, capability
        for method in methods:
            if isinstance(vars(PROTOCOLS[capability]).get(method), classmethod):
                continue  # called on the class, in the receiver's threads
            assert method in vars(ConnectionProxy), method
            assert callable(getattr(ConnectionActor, method)), method


def test_response_and_task_capabilities_are_typed_and_required_by_their_settings():
    from dataclasses import replace

    from syncd.config.model import IntegrationConfig
    from syncd.config.needs import required
    from syncd.connectors.capabilities import PROTOCOLS, REQUIRED_METHODS

    assert REQUIRED_METHODS[Capability.READ_RESPONSES] == ("read_engagement",)
    assert REQUIRED_METHODS[Capability.WRITE_RESPONSES] == ("write_engagement",)
    assert REQUIRED_METHODS[Capability.CREATE_TASKS] == ("create_task",)
    assert PROTOCOLS[Capability.CREATE_TASKS].__name__ == "TaskCreator"
    plain = IntegrationConfig("i", "s", "d")
    assert not {r.capability for r in required(plain)} & {
        Capability.READ_RESPONSES, Capability.WRITE_RESPONSES, Capability.CREATE_TASKS}
    both = replace(plain, response_events=("email_opened",), tasks_secret="x")
    assert {(r.role, r.capability, r.setting) for r in required(both)} >= {
        ("destination", Capability.READ_RESPONSES, "response_events"),
        ("source", Capability.WRITE_RESPONSES, "response_events"),
        ("source", Capability.CREATE_TASKS, "tasks_secret")}


def test_a_declared_capability_is_called_through_the_typed_proxy(actors):
    ref = ConnectionActor.start(MemoryConnector("mem", {"world": "typed"}))
    proxy = typed_proxy(ref)
    results = proxy.write_profiles([Profile("1", "a@x.nl")], set()).get(timeout=5)
    assert [(r.key, r.outcome) for r in results] == [("1", "created")]
    [gone] = proxy.read_records([Event("nope")]).get(timeout=5)
    assert gone.id == "nope" and gone.deleted


def test_an_undeclared_capability_is_refused_naming_the_connection(actors):
    ref = ConnectionActor.start(WriteOnly("plain", {"world": "typed-refused"}))
    proxy = typed_proxy(ref)
    with pytest.raises(CapabilityMissing, match="connection plain .kind write-only. lacks "
                                                "the capability delete_profiles"):
        proxy.delete_profiles(["1"]).get(timeout=5)
    with pytest.raises(CapabilityMissing, match="read_records"):
        proxy.read_page(None, 10).get(timeout=5)
    assert ref.is_alive()  # an asked call that fails never stops the actor
    assert proxy.ping().get(timeout=5) == "plain"
    pykka.ActorRegistry.stop_all()
