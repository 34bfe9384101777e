"""Fixtures of the config tests: a hand-built registry and a config-file helper."""

from __future__ import annotations

import textwrap

import pytest
from config_support import INLINE, SECRET, VALID, FakeCrm, FakeMarketing  # noqa: F401

from syncd.connectors.plugins import PluginStatus, Registry
from syncd.exceptions import ConfigErrors


@pytest.fixture
def registry() -> Registry:
    return Registry(
        connectors={"crm": FakeCrm, "mkt": FakeMarketing},
        plugins=[PluginStatus(name="lime", module="syncd_lime", status="failed",
                              reason="import failed: ModuleNotFoundError: No module named 'x'")],
    )


@pytest.fixture
def environ() -> dict[str, str]:
    return {"CRM_SECRET": SECRET}


class Files:
    def __init__(self, tmp_path, registry, environ):
        self.tmp_path, self.registry, self.environ = tmp_path, registry, environ

    def write(self, text: str, name: str = "syncd.toml") -> str:
        path = self.tmp_path / name
        path.write_text(textwrap.dedent(text))
        return str(path)

    def load(self, text: str):
        from syncd.config import load

        return load(self.write(text), self.registry, environ=self.environ)

    def errors(self, text: str):
        """The ConfigErrors of ``text`` (fails the test if it loads)."""
        from syncd.config import load

        with pytest.raises(ConfigErrors) as info:
            load(self.write(text), self.registry, environ=self.environ)
        assert info.value.errors, "ConfigErrors without errors"
        return info.value.errors

    def error(self, text: str, key: str):
        """The one error of ``text`` about ``key``."""
        errors = self.errors(text)
        found = [e for e in errors if e.key == key]
        assert len(found) == 1, f"no single error for {key}: {[str(e) for e in errors]}"
        return found[0]


@pytest.fixture
def files(tmp_path, registry, environ) -> Files:
    return Files(tmp_path, registry, environ)
