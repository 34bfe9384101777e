"""``syncd check-config`` (offline, and ``--online`` against the accounts) and the preflight
part of ``syncd status``: the CLI's side of :mod:`syncd.engine.preflight`."""

from __future__ import annotations

import os
import sys

from syncd import config
from syncd.connectors import plugins
from syncd.engine import preflight


def check_config(args, default_path: str) -> int:
    """Offline checks first (the file alone); with ``--online`` then the accounts: every name
    the config uses is checked against what they have (``syncd.engine.preflight``). Exit 0: no
    problem; 1: problems in the file or names the accounts lack; 69: only connection errors
    (the accounts could not be checked)."""
    if args.file and args.config and os.path.abspath(args.file) != os.path.abspath(args.config):
        print(f"syncd: two config files given ({args.config} and {args.file}): give one",
              file=sys.stderr)
        return 2
    path = args.file or default_path
    registry = plugins.load()
    errors = config.check(path, registry)
    if errors:
        for line in errors:
            print(line, file=sys.stderr)
        print(f"{path}: {len(errors)} problem(s)", file=sys.stderr)
        return 1
    if not args.online:
        print(f"{path}: OK (add --online to check the names it uses against the accounts)")
        return 0
    print(f"{path}: OK offline; checking the accounts ...", flush=True)
    cfg = config.load(path, registry)
    report = preflight.run(cfg, registry, preflight.direct_check(cfg, registry),
                           log_results=False)
    for problem in report.errors:
        print(f"{cfg.path}: {problem}", file=sys.stderr)
    for problem in report.warnings:
        print(f"{cfg.path}: warning: {problem}", file=sys.stderr)
    for line in report.connection_lines():
        print(f"{cfg.path}: {line}", file=sys.stderr)
    for name in report.unchecked:
        print(f"{path}: connections.{name}: its connector cannot check the account (not "
              f"checked)")
    if report.errors:
        extra = (f", and {len(report.connection_errors)} connection(s) could not be checked"
                 if report.connection_errors else "")
        print(f"{path}: {len(report.errors)} name(s) the accounts do not have{extra}",
              file=sys.stderr)
        return 1
    if report.connection_errors:
        print(f"{path}: {len(report.connection_errors)} connection(s) could not be checked",
              file=sys.stderr)
        return 69  # EX_UNAVAILABLE
    print(f"{path}: OK online: every name the config uses exists in the accounts")
    return 0


def print_preflight(console, status: dict, e) -> None:
    """Per integration, what its accounts lack (the daemon's preflight)."""
    for name, i in status["integrations"].items():
        found = i.get("preflight") or {}
        errors, conns = found.get("problems") or [], found.get("connection_errors") or []
        warnings = found.get("warnings") or []
        if not (errors or conns or warnings):
            continue
        color = "red" if errors else "yellow"
        console.print(f"[{color}]integration {e(name)}: preflight problems (a full sync is "
                      f"{'refused' if errors else 'allowed'}):[/{color}]")
        for line in conns:
            console.print(f"  connection error: {e(line)}")
        for line in errors:
            console.print(f"  {e(line)}")
        for line in warnings:
            console.print(f"  warning: {e(line)}")
