"""The problems of one config file, collected (nothing raises while checking), and the
helpers that walk its tables."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from syncd.config.sections import NAME_RE, toml_key
from syncd.exceptions import ConfigError

_SCRUB_MIN = 4  # shorter secret values are not scrubbed from messages (they would mangle words)


class Problems:
    """Collects the problems of one config file; the secrets it met are scrubbed at the end."""

    def __init__(self, file: str | None):
        self.file = file
        self.errors: list[ConfigError] = []
        self.secrets: list[str] = []

    def add(self, key: str, message: str, fix: str = "") -> None:
        self.errors.append(ConfigError(key, message, fix, file=self.file))

    def count(self) -> int:
        return len(self.errors)

    def finish(self) -> list[ConfigError]:
        """The errors, with any secret value that slipped into a text replaced by ``***``."""
        values = sorted({s for s in self.secrets if len(s) >= _SCRUB_MIN}, key=len, reverse=True)
        if not values:
            return self.errors
        out = []
        for e in self.errors:
            message, fix = e.message, e.fix
            for v in values:
                message, fix = message.replace(v, "***"), fix.replace(v, "***")
            out.append(ConfigError(e.key, message, fix, file=e.file))
        return out


def _table(parent: Mapping[str, Any], key: str, dotted: str, problems: Problems) -> dict:
    value = parent.get(key, {})
    if isinstance(value, dict):
        return value
    problems.add(dotted, "must be a table", f"write it as a section: [{dotted}]")
    return {}


def _names(section: str, raw: Mapping[str, Any], problems: Problems) -> dict[str, dict]:
    tables = {}
    for name, table in _table(raw, section, section, problems).items():
        key = f"{section}.{toml_key(name)}"
        if not NAME_RE.match(name):
            fixed = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "main"
            problems.add(key, "a name may only use letters, digits, _ and -",
                         f"rename it, e.g. [{section}.{fixed}]")
            continue
        if not isinstance(table, dict):
            problems.add(key, "must be a table", f"write it as a section: [{section}.{name}]")
            continue
        tables[name] = table
    return tables
