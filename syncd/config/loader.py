"""Read a TOML config, validate all of it, and build the frozen :class:`~syncd.config.model.Config`.

Every problem in the file is collected and raised together as
:class:`~syncd.exceptions.ConfigErrors`; each names the file, the dotted key and the fix. The
daemon calls :func:`load` on start and on SIGHUP (keeping the old config on any error);
``syncd check-config`` calls :func:`check`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from typing import Any

from syncd.config.integrations import _integrations
from syncd.config.keyspaces import key_problems
from syncd.config.model import (
    AdminConfig,
    Config,
    ConnectionConfig,
    DaemonConfig,
    ReceiverConfig,
)
from syncd.config.needs import needs
from syncd.config.plugins import ConnectorClass, ConnectorRegistry
from syncd.config.problems import Problems, _names, _table
from syncd.config.sections import (
    ADMIN_OPTIONS,
    CONNECTION_OPTIONS,
    DAEMON_OPTIONS,
    PATH_OPTIONS,
    RECEIVER_OPTIONS,
    did_you_mean,
    is_loopback_host,
    resolve_path,
    shown,
    toml_key,
    unknown_key_fix,
    validate_options,
)
from syncd.exceptions import ConfigError, ConfigErrors

TOP_LEVEL = ("daemon", "receiver", "admin", "connections", "integrations")
_SIMPLE = {"daemon": DAEMON_OPTIONS, "receiver": RECEIVER_OPTIONS, "admin": ADMIN_OPTIONS}
_TOML_POS = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_HHMM = re.compile(r"^(\d{1,2}):(\d{2})$")
_VALIDATE_PROBLEM = re.compile(r"^([A-Za-z0-9_.\-\[\]\"]+): (.*?)(?: \(fix: (.*)\))?$", re.S)


def load(path: str, registry: ConnectorRegistry, *, environ: Mapping[str, str] = os.environ) -> Config:
    """The validated config in ``path``; raises :class:`ConfigErrors` listing every problem."""
    path = os.path.abspath(path)
    problems = Problems(path)
    raw = _read(path, problems)
    config = None if raw is None else _build(raw, path, registry, problems, environ)
    errors = problems.finish()
    if errors or config is None:
        raise ConfigErrors(errors)
    return config


def check(path: str, registry: ConnectorRegistry, *, environ: Mapping[str, str] = os.environ) -> list[str]:
    """The problems of the config in ``path`` as lines for people (empty when it is valid)."""
    try:
        load(path, registry, environ=environ)
    except ConfigErrors as exc:
        return [str(e) for e in exc.errors]
    return []


def _read(path: str, problems: Problems) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        problems.add("(file)", f"cannot read the config file: {exc.strerror or exc}",
                     "check the path given with --config and the file's permissions")
        return None
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        problems.add("(file)", f"the file is not UTF-8 (byte {exc.start})", "save it as UTF-8")
    except RecursionError:
        problems.add("(file)", "tables or arrays are nested too deeply to read",
                     "write tables and arrays a few levels deep at most")
    except tomllib.TOMLDecodeError as exc:
        text = str(exc)
        match = _TOML_POS.search(text)
        if match:
            line, col = int(match[1]), int(match[2])
            text = text[:match.start()]
        else:  # "at end of document"
            line, col = data.count(b"\n") + 1, 1
            text = re.sub(r"\s*\(at end of document\)\s*$", "", text)
        error = ConfigError(f"line {line}, column {col}", f"invalid TOML: {text}",
                            "correct the TOML syntax there (https://toml.io); quote keys that "
                            'contain dots, e.g. "Contact.Organization.Name" = "company"',
                            file=path)
        error.line, error.column = line, col
        problems.errors.append(error)
    return None


def _build(raw: dict[str, Any], path: str, registry: ConnectorRegistry, problems: Problems,
           environ: Mapping[str, str]) -> Config | None:
    base_dir = os.path.dirname(path)
    for key in raw:
        if key not in TOP_LEVEL:
            problems.add(toml_key(key), "unknown section", unknown_key_fix(key, TOP_LEVEL))
    simple: dict[str, Any] = {}
    for name, options in _SIMPLE.items():
        table = _table(raw, name, name, problems)
        values = validate_options(table, options, name, problems, base_dir=base_dir,
                                  environ=environ)
        for key in list(values):
            if f"{name}.{key}" in PATH_OPTIONS and values[key]:
                values[key] = resolve_path(values[key], base_dir)
        simple[name] = values
    _check_admin_host(simple["admin"], problems)
    connections, classes = _connections(raw, registry, problems, base_dir, environ)
    integrations = _integrations(raw, classes, problems, base_dir, environ)
    if problems.count():
        return None
    config = Config(
        path=path,
        daemon=DaemonConfig(**simple["daemon"]),
        receiver=ReceiverConfig(**simple["receiver"]),
        admin=AdminConfig(**simple["admin"]),
        connections=connections,
        integrations=integrations,
    )
    _needs_problems(config, registry, classes, problems)
    key_problems(config, classes, problems)  # keyspaces.py: keys that could collide
    return None if problems.count() else config


def _needs_problems(config: Config, registry: ConnectorRegistry, classes: dict, problems: Problems
                    ) -> None:
    """Each connector's offline check of its options against what the integrations use."""
    for name, wanted in needs(config, registry).items():
        cls = classes.get(name)
        if cls is None:
            continue
        try:
            found = cls.validate_needs(name, config.connections[name].options, wanted)
        except Exception as exc:  # a plugin's bug must not stop the loader
            problems.add(f"connections.{toml_key(name)}", f"the connector's own check failed "
                         f"({type(exc).__name__}: {exc}); this is a bug in the {cls.kind} "
                         "plugin")
            continue
        for problem in found:
            problems.add(problem.key, problem.message, problem.fix or "")


def _check_admin_host(admin: dict[str, Any], problems: Problems) -> None:
    host = admin.get("host")
    if host is not None and not is_loopback_host(host):
        problems.add("admin.host", f"must be a loopback address, got {shown(host)}: the admin "
                     "endpoint starts and cancels syncs and must not be reachable from outside",
                     'write `host = "127.0.0.1"` (or "::1"); reach it remotely through ssh')


def _connections(raw, registry, problems, base_dir, environ
                 ) -> tuple[dict[str, ConnectionConfig], dict[str, ConnectorClass]]:
    """The valid connections by name, and the connector class of each whose kind is known."""
    out, classes = {}, {}
    for name, table in _names("connections", raw, problems).items():
        prefix = f"connections.{name}"
        before = problems.count()
        kind_opt = CONNECTION_OPTIONS[0]
        kind = validate_options({"kind": table["kind"]} if "kind" in table else {},
                                CONNECTION_OPTIONS, prefix, problems, base_dir=base_dir,
                                environ=environ).get("kind")
        if kind is None:
            continue
        cls = registry.connector(kind)
        if cls is None:
            _unknown_kind(prefix, kind, registry, problems)
            continue
        classes[name] = cls
        options = validate_options(
            table, cls.options, prefix, problems, base_dir=base_dir, environ=environ,
            extra_keys=[kind_opt.name])
        if problems.count() > before:
            continue
        for problem in _connector_problems(cls, name, options):
            match = _VALIDATE_PROBLEM.match(problem)
            if match and match[1].split(".")[0].split("[")[0] in {o.name for o in cls.options}:
                problems.add(f"{prefix}.{match[1]}", match[2], match[3] or "")
            else:
                problems.add(prefix, problem)
        if problems.count() == before:
            out[name] = ConnectionConfig(name=name, kind=kind, options=options)
    return out, classes


def _unknown_kind(prefix: str, kind: str, registry: ConnectorRegistry, problems: Problems) -> None:
    available = sorted(registry.connectors)
    listed = ", ".join(available) if available else "none"
    failed = {p.name: p for p in registry.plugins if p.status == "failed"}
    if kind in failed:
        problems.add(f"{prefix}.kind", f"the plugin `{kind}` that provides kind {shown(kind)} "
                     f"failed to load: {failed[kind].reason}",
                     f"fix or reinstall the plugin (see `syncd plugins`); loaded kinds: {listed}")
        return
    guess = did_you_mean(kind, available)
    fix = f'did you mean `kind = "{guess}"`? ' if guess else ""
    if failed:
        fix += "plugins that failed to load: " + ", ".join(sorted(failed)) + "; "
    problems.add(f"{prefix}.kind", f"no connector of kind {shown(kind)} is loaded "
                 f"(available kinds: {listed})",
                 fix + "install the plugin that provides it, or use one of the available kinds")


def _connector_problems(cls: ConnectorClass, name: str, options: dict) -> list[str]:
    try:
        return [str(p) for p in cls.validate(name, options)]
    except Exception as exc:  # a plugin's bug must not stop the loader
        return [f"the connector's own check failed ({type(exc).__name__}: {exc}); this is a "
                f"bug in the {cls.kind} plugin"]
