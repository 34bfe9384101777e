"""``syncd ms365 authorize CONNECTION --user EMAIL`` and ``syncd ms365 users CONNECTION``
(added to the CLI through the ``syncd_cli_commands`` hook)."""

from __future__ import annotations

import json
import sys
import time
from urllib.parse import parse_qs, urlparse

from syncd.plugin import SyncdError, config_path, load_config


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("ms365", help="link Outlook mailboxes (Microsoft 365) and list "
                              "the linked users", description="Link a user's Outlook "
                              "mailbox to a ms365 connection, or list the linked users.")
    sub = p.add_subparsers(dest="ms365_command", metavar="ACTION", required=True)
    a = sub.add_parser("authorize", help="link a user's mailbox (device code, auth code or "
                       "application permissions, as the connection's flow says)")
    a.add_argument("connection")
    a.add_argument("--user", required=True, metavar="EMAIL")
    a.add_argument("--response-url", metavar="URL", help="flow auth_code: the URL the "
                   "browser was sent back to (asked for on stdin when not given)")
    a.add_argument("-c", "--config", metavar="FILE")
    a.set_defaults(func=cmd_authorize)
    u = sub.add_parser("users", help="list the linked users and their state")
    u.add_argument("connection")
    u.add_argument("--json", action="store_true")
    u.add_argument("-c", "--config", metavar="FILE")
    u.set_defaults(func=cmd_users)


def _accounts(args):
    from syncd_ms365.auth import Accounts

    config = load_config(config_path(args.config))
    connection = config.connections.get(args.connection)
    if connection is None or connection.kind != "ms365":
        names = sorted(n for n, c in config.connections.items() if c.kind == "ms365")
        raise SyncdError(f"no ms365 connection {args.connection!r} in the config (ms365 "
                         f"connections: {', '.join(names) or 'none'})")
    return Accounts(args.connection, connection.options, config.daemon.state_dir)


def cmd_authorize(args) -> int:
    accounts = _accounts(args)
    user = args.user.strip().lower()
    flow = accounts.flow
    if flow == "application":
        accounts.authorize_application(user)
    elif flow == "auth_code":
        started = accounts.auth_code_flow(user)
        print(f"Open this URL as {user} and sign in:\n{started['auth_uri']}")
        url = args.response_url or input("Paste the URL the browser was sent back to: ")
        params = {k: v[0] for k, v in parse_qs(urlparse(url.strip()).query).items()}
        accounts.complete_auth_code(user, started, params)
    else:
        accounts.authorize_device(user, lambda message: print(message, flush=True))
    print(f"{user} is linked to connection {args.connection} ({flow}); the daemon starts "
          "its initial sync")
    return 0


def cmd_users(args) -> int:
    users = _accounts(args).summary()
    if args.json:
        json.dump(users, sys.stdout, indent=2)
        print()
        return 0
    if not users:
        print(f"no user is linked to {args.connection} (syncd ms365 authorize "
              f"{args.connection} --user EMAIL)")
        return 0
    for user, entry in users.items():
        since = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.get("since") or 0))
        reason = f"  {entry['reason']}" if entry.get("reason") else ""
        print(f"{user:40} {entry.get('state') or '?':18} since {since}{reason}")
    return 0
