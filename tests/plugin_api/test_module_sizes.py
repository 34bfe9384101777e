"""The core's modules stay small (issue 9's acceptance): none over 400 lines, the median
under 200. A module that grows past the limit is split, not let through."""

from __future__ import annotations

import pathlib
import statistics

from meta import ROOT

LIMIT, MEDIAN = 400, 200


def sizes(root: pathlib.Path) -> dict[str, int]:
    return {str(p.relative_to(root)): len(p.read_text(encoding="utf-8").splitlines())
            for p in sorted(root.rglob("*.py"))}


def too_long(found: dict[str, int], limit: int = LIMIT) -> list[str]:
    return sorted(f"{path} ({n} lines)" for path, n in found.items() if n > limit)


def test_no_core_module_is_over_the_limit_and_the_median_is_small():
    found = sizes(ROOT / "syncd")
    assert too_long(found) == []
    assert statistics.median(found.values()) < MEDIAN


def test_the_check_finds_a_module_over_the_limit(tmp_path):
    (tmp_path / "small.py").write_text("x = 1\n")
    (tmp_path / "big.py").write_text("x = 1\n" * (LIMIT + 1))
    assert too_long(sizes(tmp_path)) == [f"big.py ({LIMIT + 1} lines)"]
