"""Preflight: check every name the config uses against what the accounts really have.

``syncd check-config --online`` and the daemon (at start, on reload and before a full sync)
run the same check:

1. :func:`syncd.config.needs.needs` collects, per connection, what the enabled
   integrations name in it, each with the config key that names it: source field paths (conditions, field mappings),
   labels (consent mappings, selections), groups (overviews); destination attributes (field
   mappings), topics and channels (consent mappings), tags (selections, overviews);
2. :func:`run` hands each connection's needs to its connector's ``check_schema``
   (:attr:`~syncd.connectors.connector.Capability.CHECK_SCHEMA`), which also checks the connection's
   own options (entity sets, navigations, sections, keyspaces ...), concurrently;
3. the :class:`Report` says, per integration, which problems concern it (its own keys and its
   two connections' keys). A connector that raises could not reach or read its account: that
   is a *connection error* (refused, 401 ...), reported as such, never as a config problem.

Vendor-agnostic: what a name means in an account is the connector's business.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import structlog

from syncd.config.model import Config, IntegrationConfig
from syncd.config.needs import connection_key, connector_class, integration_key, needs
from syncd.config.schema import Secret
from syncd.config.sections import did_you_mean
from syncd.connectors.connector import Capability, SchemaChecker
from syncd.exceptions import SyncdError
from syncd.records import MAX_HAVE, SchemaNeeds, SchemaProblem

log = structlog.get_logger("syncd.engine.preflight")

#: ``check(connection, needs) -> problems``; raises when the account cannot be read.
Check = Callable[[str, SchemaNeeds], list[SchemaProblem]]


# -- helpers for connectors --------------------------------------------------------------------


def missing(key: str, message: str, name: str, candidates: Iterable[str], *,
            fix: str | None = None, severity: str = "error",
            suggest: Callable[[str], str] = lambda s: s) -> SchemaProblem:
    """A problem for ``name`` not being among ``candidates``: "did you mean" the closest one
    (``suggest`` turns it into what to write in the config), and what the account has, the
    closest first."""
    candidates = sorted({str(c) for c in candidates})
    guess = did_you_mean(name, candidates)
    close = difflib.get_close_matches(name, candidates, n=MAX_HAVE, cutoff=0.0)
    have = tuple(close + [c for c in candidates if c not in close])
    return SchemaProblem(key=key, message=message, have=have,
                         suggestion=suggest(guess) if guess is not None else None,
                         fix=fix if guess is None else None, severity=severity)


# -- the report -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """The outcome of one preflight."""

    problems: tuple[SchemaProblem, ...] = ()
    #: connection -> why its account could not be checked (refused, 401 ...)
    connection_errors: dict[str, str] = field(default_factory=dict)
    #: connections whose connector has no schema check
    unchecked: tuple[str, ...] = ()
    at: float = field(default_factory=time.time)

    @property
    def errors(self) -> tuple[SchemaProblem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> tuple[SchemaProblem, ...]:
        return tuple(p for p in self.problems if p.severity != "error")

    @property
    def ok(self) -> bool:
        return not self.errors and not self.connection_errors

    def connection_lines(self) -> list[str]:
        return [f"{connection_key(c)}: cannot check the account (connection error, not a "
                f"config problem): {e}" for c, e in sorted(self.connection_errors.items())]

    def concerns(self, problem: SchemaProblem, integration: IntegrationConfig) -> bool:
        """True when ``problem`` is about ``integration``: its own keys, or its source's or
        destination's options."""
        prefixes = [integration_key(integration.name)] + [
            connection_key(c) for c in (integration.source, integration.destination)]
        return any(problem.key == p or problem.key.startswith((p + ".", p + "["))
                   for p in prefixes)

    def for_integration(self, integration: IntegrationConfig) -> dict[str, Any]:
        """The part of the report that concerns one integration (for ``syncd status``)."""
        mine = [p for p in self.problems if self.concerns(p, integration)]
        conns = {c: e for c, e in self.connection_errors.items()
                 if c in (integration.source, integration.destination)}
        errors = [str(p) for p in mine if p.severity == "error"]
        state = "connection_error" if conns else "problems" if errors else "ok"
        return {"state": state, "at": self.at, "problems": errors,
                "warnings": [str(p) for p in mine if p.severity != "error"],
                "connection_errors": [f"{connection_key(c)}: {e}" for c, e in conns.items()]}

    def blocking(self, integration: IntegrationConfig) -> list[SchemaProblem]:
        """The errors that stop a full sync of ``integration`` from starting."""
        return [p for p in self.errors if self.concerns(p, integration)]


# -- running ------------------------------------------------------------------------------------


def run(config: Config, registry: Any, check: Check, *,
        connections: Iterable[str] | None = None, timeout: float = 300.0,
        log_results: bool = True) -> Report:
    """Check the connections (all, or those named) with ``check``, concurrently; the
    problems are logged unless ``log_results`` is False (the CLI prints them)."""
    wanted = list(connections) if connections is not None else list(config.connections)
    all_needs = needs(config, registry)
    checkable, unchecked = [], []
    for name in wanted:
        cls = connector_class(config, registry, name)
        if cls is not None and Capability.CHECK_SCHEMA in cls.capabilities:
            checkable.append(name)
        else:
            unchecked.append(name)
    secrets = _secrets(config)
    problems: list[SchemaProblem] = []
    errors: dict[str, str] = {}
    if checkable:
        with ThreadPoolExecutor(len(checkable), thread_name_prefix="preflight") as pool:
            futures = {name: pool.submit(check, name, all_needs[name]) for name in checkable}
            for name, future in futures.items():
                try:
                    found = future.result(timeout=timeout)
                except Exception as exc:  # the account could not be reached or read
                    errors[name] = _scrub(_describe(exc), secrets)
                    continue
                problems.extend(_scrubbed(p, secrets) for p in found)
    report = Report(problems=tuple(problems), connection_errors=errors,
                    unchecked=tuple(unchecked))
    if log_results:
        _log(report)
    return report


def _log(report: Report) -> None:
    for p in report.problems:
        log.warning("preflight.problem", key=p.key, problem=str(p), severity=p.severity)
    for line in report.connection_lines():
        log.error("preflight.connection_error", error=line)
    log.info("preflight.done", problems=len(report.errors), warnings=len(report.warnings),
             connection_errors=len(report.connection_errors), unchecked=list(report.unchecked))


def direct_check(config: Config, registry: Any) -> Check:
    """A :data:`Check` that builds each connector itself (for the CLI: no daemon, no
    actors); each connector is started and stopped around its check."""
    def check(name: str, wanted: SchemaNeeds) -> list[SchemaProblem]:
        conn = config.connections[name]
        connector = registry.connector(conn.kind)(name, conn.options)
        connector.start()
        try:
            checker: SchemaChecker = connector
            return list(checker.check_schema(wanted))
        finally:
            connector.stop()

    return check


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, SyncdError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _secrets(config: Config) -> list[str]:
    values = [v.reveal() for c in config.connections.values() for v in c.options.values()
              if isinstance(v, Secret)]
    return sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)


def _scrub(text: str, secrets: list[str]) -> str:
    for value in secrets:
        text = text.replace(value, "***")
    return text


def _scrubbed(problem: SchemaProblem, secrets: list[str]) -> SchemaProblem:
    if not secrets:
        return problem
    return SchemaProblem(
        key=problem.key, message=_scrub(problem.message, secrets),
        have=tuple(_scrub(h, secrets) for h in problem.have),
        suggestion=None if problem.suggestion is None else _scrub(problem.suggestion, secrets),
        fix=None if problem.fix is None else _scrub(problem.fix, secrets),
        severity=problem.severity)
