"""Guarded discovery of connector plugins.

Every entry point of the group ``syncd`` is loaded on its own: a plugin that fails to import,
whose hook raises, or whose connectors do not honour the connector API is recorded with its
reason and skipped. One broken plugin never stops the daemon or the other plugins.
(``PluginManager.load_setuptools_entrypoints`` would abort on the first failure, so the
entry points are iterated here.)
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field

import pluggy
import structlog

from syncd.connectors import hookspecs
from syncd.connectors.connector import Capability, Connector, missing_methods

log = structlog.get_logger("syncd.connectors.plugins")

GROUP = "syncd"


@dataclass
class PluginStatus:
    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    status: str = "loaded"  # "loaded" | "failed"
    reason: str | None = None
    kinds: list[str] = field(default_factory=list)


@dataclass
class Registry:
    """What the plugins provide: connector classes by kind, and a status per plugin."""

    connectors: dict[str, type[Connector]] = field(default_factory=dict)
    plugins: list[PluginStatus] = field(default_factory=list)

    def connector(self, kind: str) -> type[Connector] | None:
        return self.connectors.get(kind)


def _check_connector(cls: object, seen: dict[str, type[Connector]]) -> str | None:
    if not isinstance(cls, type) or not issubclass(cls, Connector):
        return f"{cls!r} is not a subclass of syncd.connectors.connector.Connector"
    if not cls.kind:
        return f"{cls.__name__} has no kind"
    if cls.kind in seen and seen[cls.kind] is not cls:
        return f"kind {cls.kind!r} is already provided by {seen[cls.kind].__module__}"
    try:
        [Capability(c) for c in cls.capabilities]
    except ValueError as exc:
        return f"{cls.__name__}: {exc}"
    missing = missing_methods(cls)
    if missing:
        return f"{cls.__name__} lacks {', '.join(missing)}"
    return None


def load(entry_points=None) -> Registry:
    """Load every plugin of the group; never raises for a plugin's fault."""
    registry = Registry()
    if entry_points is None:
        entry_points = importlib.metadata.entry_points(group=GROUP)
    for ep in sorted(entry_points, key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        status = PluginStatus(
            name=ep.name,
            module=ep.value,
            distribution=dist.name if dist else None,
            version=dist.version if dist else None,
        )
        registry.plugins.append(status)
        try:
            module = ep.load()
        except Exception as exc:  # a plugin's import error must not stop the daemon
            status.status, status.reason = "failed", f"import failed: {type(exc).__name__}: {exc}"
            log.error("plugin.failed", plugin=ep.name, reason=status.reason)
            continue
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        try:
            pm.register(module, name=ep.name)
            classes = [c for result in pm.hook.syncd_connectors() for c in (result or [])]
        except Exception as exc:
            status.status, status.reason = "failed", f"hook failed: {type(exc).__name__}: {exc}"
            log.error("plugin.failed", plugin=ep.name, reason=status.reason)
            continue
        problems = [p for p in (_check_connector(c, registry.connectors) for c in classes) if p]
        if problems:
            status.status, status.reason = "failed", "; ".join(problems)
            log.error("plugin.failed", plugin=ep.name, reason=status.reason)
            continue
        for cls in classes:
            registry.connectors[cls.kind] = cls
            status.kinds.append(cls.kind)
        log.debug("plugin.loaded", plugin=ep.name, kinds=status.kinds)
    return registry


def add_cli_commands(subparsers, entry_points=None) -> list[str]:
    """Let each plugin add its ``syncd`` subcommands (hook ``syncd_cli_commands``); returns
    the names added. A plugin that fails to import, raises, or takes a name already used
    loses its commands, never the CLI."""
    if entry_points is None:
        entry_points = importlib.metadata.entry_points(group=GROUP)
    added: list[str] = []
    for ep in sorted(entry_points, key=lambda e: e.name):
        try:
            module = ep.load()
        except Exception as exc:  # the CLI must start whatever a plugin does
            log.warning("plugin.cli_failed", plugin=ep.name, reason=f"{type(exc).__name__}")
            continue
        if not hasattr(module, "syncd_cli_commands"):
            continue
        before = set(subparsers.choices)
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        try:
            pm.register(module, name=ep.name)
            pm.hook.syncd_cli_commands(subparsers=_Guarded(subparsers, before))
        except Exception as exc:
            for name in set(subparsers.choices) - before:  # what it added before failing
                subparsers.choices.pop(name, None)
            log.warning("plugin.cli_failed", plugin=ep.name,
                        reason=f"{type(exc).__name__}: {exc}")
            continue
        added += sorted(set(subparsers.choices) - before)
    return added


class _Guarded:
    """The subparsers object as a plugin sees it: a name already taken is refused."""

    def __init__(self, subparsers, taken: set[str]):
        self._subparsers = subparsers
        self._taken = taken

    def add_parser(self, name: str, **kwargs):
        if name in self._taken:
            raise ValueError(f"command {name!r} is taken")
        return self._subparsers.add_parser(name, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._subparsers, name)
