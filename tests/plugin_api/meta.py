"""Checks behind the meta-tests: each returns what is missing (empty: nothing)."""

from __future__ import annotations

import ast
import pathlib
import re
from collections.abc import Iterable

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "plugins.md"


def headings(markdown: str) -> list[str]:
    return [line.lstrip("#").strip() for line in markdown.splitlines()
            if re.match(r"#{2,4} ", line)]


def missing_doc_sections(names: Iterable[str], markdown: str) -> list[str]:
    """The names (hooks, capabilities) that no heading of ``markdown`` names as ``name``."""
    found = {m for h in headings(markdown) for m in re.findall(r"`([^`]+)`", h)}
    return sorted(n for n in names if n not in found)


def functions_named_test(paths: Iterable[pathlib.Path]) -> set[str]:
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and \
                    node.name.startswith("test_"):
                names.add(node.name)
    return names


def untested_hooks(hooks: Iterable[str], tests: set[str]) -> list[str]:
    """The hooks no test function is named after (``test_hook_<hook>...``)."""
    return sorted(h for h in hooks if not any(t.startswith(f"test_hook_{h}") for t in tests))


def hook_names(module) -> list[str]:
    return sorted(n for n in vars(module) if n.startswith("syncd_"))
