"""The ``syncd`` command. Commands that act on a running daemon talk to its admin endpoint
(loopback only, with the bearer token from the state directory)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from syncd.app import cli_common as common
from syncd.app.cli_common import DEFAULT_CONFIG, _config_path, _print_json
from syncd.app.cli_runs import (
    cmd_confirm,
    cmd_events_list,
    cmd_events_retry,
    cmd_overview_import,
    cmd_responses_run,
    cmd_runs,
    cmd_sync_cancel,
    cmd_sync_start,
)

# -- commands -----------------------------------------------------------------------------------


def cmd_run(args) -> int:
    from syncd.app.daemon import Daemon

    path = _config_path(args)
    if not os.path.exists(path):
        print(f"syncd: {path}: no such file (fix: pass -c FILE)", file=sys.stderr)
        return 78
    return Daemon(path).serve()


def cmd_check_config(args) -> int:
    from syncd.app.cli_check import check_config

    return check_config(args, _config_path(args))


def cmd_plugins(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from syncd.connectors import plugins

    registry = plugins.load()
    if args.json:
        _print_json([vars(p) for p in registry.plugins])
        return 0
    table = Table("plugin", "status", "kinds", "capabilities", "version", "reason")
    for p in registry.plugins:
        caps = ", ".join(sorted(str(c) for k in p.kinds for c in registry.connectors[k]
                                .capabilities))
        table.add_row(p.name, p.status, ", ".join(p.kinds), caps, p.version or "-",
                      p.reason or "")
    Console().print(table)
    return 0 if all(p.status == "loaded" for p in registry.plugins) else 1


def cmd_status(args) -> int:
    from syncd.app.cli_status import print_status

    status = common.admin_client(args).status()
    if args.json:
        _print_json(status)
        return 0
    print_status(status)
    return 0


def cmd_reload(args) -> int:
    result = common.admin_client(args).reload()
    if result.get("ok"):
        print("config reloaded")
        return 0
    print("the new config was rejected; syncd runs on with the previous one:", file=sys.stderr)
    for line in result.get("errors", []):
        print(f"  {line}", file=sys.stderr)
    return 1


def cmd_explain(args) -> int:
    from syncd.app.cli_explain import cmd_explain as explain

    return explain(args, common.admin_client(args))


def cmd_emulate(args) -> int:
    from syncd.connectors import plugins

    registry = plugins.load()
    cls = registry.connector(args.kind)
    if cls is None or not cls.emulator:
        kinds = sorted(k for k, c in registry.connectors.items() if c.emulator)
        print(f"syncd: no emulator for kind {args.kind!r} (available: {', '.join(kinds)})",
              file=sys.stderr)
        return 2
    module, _, name = cls.emulator.partition(":")
    emulator_cls = getattr(importlib.import_module(module), name)
    emulator = emulator_cls(host=args.host, port=args.port, seed=args.seed)
    if args.contacts:
        emulator.seed(args.contacts, seed=args.seed)
    emulator.serve_forever(
        announce=lambda url: print(f"{args.kind} emulator listening on {url} (Ctrl-C stops it)",
                                   flush=True))
    return 0


def cmd_sandbox(args) -> int:
    from syncd.app.sandbox import main as sandbox_main

    sources = [k.strip() for k in (args.sources or "").split(",") if k.strip()] or None
    return sandbox_main(contacts=args.contacts, once=args.once, changes=args.changes,
                        keep=args.keep, sources=sources)


# -- parser -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syncd",
        description="Keeps contacts in step between CRMs, APSIS One and Outlook address books.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, func, help_text: str, config: bool = True, **kw):
        p = sub.add_parser(name, help=help_text, description=help_text, **kw)
        if config:
            p.add_argument("-c", "--config", metavar="FILE",
                           help=f"config file (default: $SYNCD_CONFIG or {DEFAULT_CONFIG})")
        p.set_defaults(func=func)
        return p

    add("run", cmd_run, "run the daemon in the foreground (SIGHUP reloads, SIGTERM stops)")
    p = add("check-config", cmd_check_config, "validate a config file; each problem names its "
            "key and the fix (--online: also against the accounts)")
    p.add_argument("file", nargs="?", metavar="FILE", help="the config file (or -c FILE)")
    p.add_argument("--online", action="store_true",
                   help="also connect and check every name the config uses (fields, labels, "
                        "attributes, topics ...) against what the accounts really have")
    p = add("plugins", cmd_plugins, "list connector plugins and their status", config=False)
    p.add_argument("--json", action="store_true")
    p = add("status", cmd_status, "show the running daemon's connections, integrations and jobs")
    p.add_argument("--json", action="store_true")

    p = add("sync", None, "start or cancel a full sync", config=False)
    sync_sub = p.add_subparsers(dest="sync_command", metavar="ACTION", required=True)
    s = sync_sub.add_parser("start", help="start a full sync of an integration")
    s.add_argument("integration")
    s.add_argument("--wait", action="store_true", help="show a progress bar until it ends")
    s.add_argument("--confirm", action="store_true",
                   help="confirm what the stop-and-confirm guard holds, and let this run "
                        "change consents and delete past the share")
    s.add_argument("--dry-run", action="store_true",
                   help="read the source and the destination, write nothing: the plan of what "
                        "a full sync would change, shown by `syncd runs show RUN`")
    s.add_argument("--plan", type=int, metavar="RUN",
                   help="apply exactly the plan of dry run RUN (a record whose source or "
                        "destination profile changed since is refused)")
    s.add_argument("-c", "--config", metavar="FILE")
    s.set_defaults(func=cmd_sync_start)
    s = sync_sub.add_parser("cancel", help="cancel a running full sync")
    s.add_argument("integration")
    s.add_argument("-c", "--config", metavar="FILE")
    s.set_defaults(func=cmd_sync_cancel)

    p = add("confirm", cmd_confirm, "let the consent changes and deletes the stop-and-confirm "
            "guard holds go, and start its count again")
    p.add_argument("integration")

    p = add("runs", cmd_runs, "list runs (syncd runs [INTEGRATION]) or show one "
            "(syncd runs show RUN)")
    p.add_argument("integration", nargs="?", help="an integration, or 'show'")
    p.add_argument("run_id", nargs="?", type=int, help="with 'show': the run id")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")

    p = add("events", None, "list real-time events not applied yet; retry those that failed "
            "for good", config=False)
    ev_sub = p.add_subparsers(dest="events_command", metavar="ACTION", required=True)
    s = ev_sub.add_parser("list", help="list the events not applied yet (pending, waiting to "
                          "be tried again, failed for good)")
    s.add_argument("--failed", action="store_true",
                   help="only those that failed for good (the dead letters)")
    s.add_argument("--integration")
    s.add_argument("--json", action="store_true")
    s.add_argument("-c", "--config", metavar="FILE")
    s.set_defaults(func=cmd_events_list)
    s = ev_sub.add_parser("retry", help="queue dead letters again (all, or the ids given)")
    s.add_argument("ids", nargs="*", type=int)
    s.add_argument("--integration")
    s.add_argument("-c", "--config", metavar="FILE")
    s.set_defaults(func=cmd_events_retry)

    p = add("overview", None, "import a CRM overview now", config=False)
    ov_sub = p.add_subparsers(dest="overview_command", metavar="ACTION", required=True)
    s = ov_sub.add_parser("import", help="import the contacts of an overview (tags them)")
    s.add_argument("integration")
    s.add_argument("overview")
    s.add_argument("-c", "--config", metavar="FILE")
    s.set_defaults(func=cmd_overview_import)

    p = add("responses", None, "response data (opens, clicks ...) back to the CRM",
            config=False)
    rs_sub = p.add_subparsers(dest="responses_command", metavar="ACTION", required=True)
    s = rs_sub.add_parser("run", help="read the event export and write the events now")
    s.add_argument("integration")
    s.add_argument("-c", "--config", metavar="FILE")
    s.set_defaults(func=cmd_responses_run)

    add("reload", cmd_reload, "ask the running daemon to reload its config (like SIGHUP)")

    p = add("explain", cmd_explain, "tell one contact's story: events, each decision and why "
            "(conditions, mappings, consents, the guard), the destination's answers")
    p.add_argument("integration", help="an integration, or a link a connector runs "
                   "(CONNECTION:KEY, e.g. a user's Outlook link outlook:anna@example.com)")
    p.add_argument("record", help="the record's id in the source")
    p.add_argument("--json", action="store_true")

    p = add("emulate", cmd_emulate, "serve one connector's partner emulator in the foreground",
            config=False)
    p.add_argument("kind", help="connector kind, e.g. tribe or apsis")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--contacts", type=int, default=0, help="seed this many contacts")
    p.add_argument("--seed", type=int, default=0)

    p = add("sandbox", cmd_sandbox, "run the demo: emulators and a daemon on loopback",
            config=False)
    p.add_argument("--contacts", type=int, default=2000)
    p.add_argument("--changes", type=int, default=5)
    p.add_argument("--once", action="store_true",
                   help="run the scenario, check the result and exit (0 only if it holds)")
    p.add_argument("--keep", action="store_true", help="keep the temporary state directory")
    p.add_argument("--sources", default="",
                   help="the CRMs to run into one APSIS account, comma-separated (default: "
                        "tribe,lime, those whose plugin is loaded)")

    from syncd.connectors.plugins import add_cli_commands

    add_cli_commands(sub)  # the plugins' own commands (hook syncd_cli_commands)
    return parser


def _version() -> str:
    from syncd import __version__

    return f"syncd {__version__}"


def main(argv: list[str] | None = None) -> int:
    from syncd.app import logs
    from syncd.exceptions import AdminError, SyncdError

    # Quiet, and on stderr, until a command sets its own level (the daemon uses its
    # config's): building the parser loads plugins, whose warnings must not mix with the
    # JSON a command prints.
    logs.configure("warning", "auto", stream=sys.stderr)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2

    try:
        return args.func(args) or 0
    except AdminError as exc:
        print(f"syncd: {exc}", file=sys.stderr)
        return 1
    except SyncdError as exc:
        print(f"syncd: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
