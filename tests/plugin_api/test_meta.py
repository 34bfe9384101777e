"""Meta-tests: every capability has a contract class and a docs section, every hook a docs
section and a test. Each check is shown to fail on a dummy."""

from __future__ import annotations

import enum
import types

from meta import (
    DOCS,
    ROOT,
    functions_named_test,
    hook_names,
    missing_doc_sections,
    untested_hooks,
)

from syncd.connectors import hookspecs
from syncd.connectors.capabilities import PROTOCOLS, Capability
from syncd.testing.contract import CONTRACTS, missing_contracts

Dummy = enum.StrEnum("Dummy", {**{c.name: c.value for c in Capability}, "DUMMY": "dummy"})


def all_tests() -> set[str]:
    return functions_named_test((ROOT / "tests").rglob("test_*.py"))


def test_every_capability_has_a_contract_class():
    assert missing_contracts(Capability) == []
    assert set(CONTRACTS) == set(PROTOCOLS) == set(Capability)


def test_a_capability_without_a_contract_class_fails_the_check():
    assert missing_contracts(Dummy) == ["dummy"]


def test_every_capability_and_hook_has_a_docs_section():
    text = DOCS.read_text()
    assert missing_doc_sections([c.value for c in Capability], text) == []
    assert missing_doc_sections(hook_names(hookspecs), text) == []


def test_a_capability_or_hook_without_a_docs_section_fails_the_check():
    text = DOCS.read_text()
    assert missing_doc_sections([c.value for c in Dummy], text) == ["dummy"]
    assert missing_doc_sections(["syncd_dummy"], text) == ["syncd_dummy"]
    # a mention in running text is not a section
    assert missing_doc_sections(["dummy"], "## Capabilities\n\nsee `dummy`\n") == ["dummy"]


def test_every_hook_has_a_test():
    assert hook_names(hookspecs)
    assert untested_hooks(hook_names(hookspecs), all_tests()) == []


def test_a_hook_without_a_test_fails_the_check():
    dummy = types.ModuleType("dummy_hookspecs")
    vars(dummy).update({n: getattr(hookspecs, n) for n in hook_names(hookspecs)})
    dummy.syncd_dummy = lambda: None
    assert untested_hooks(hook_names(dummy), all_tests()) == ["syncd_dummy"]
