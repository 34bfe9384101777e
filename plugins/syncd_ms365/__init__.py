"""The Microsoft 365 (Outlook contacts) connector for syncd.

Modules: :mod:`.connector` (the connector), :mod:`.auth` (linked users, MSAL and the token
cache), :mod:`.graph` (the Graph client and its per-mailbox limits), :mod:`.mailbox`
(contacts, connector ids, delta, subscriptions), :mod:`.cli` (``syncd ms365 ...``), and the
emulators of Microsoft Graph (:mod:`.emulator_graph`) and of the identity platform for MSAL
(:mod:`.emulator_identity`, served over TLS by :mod:`.tls`), imported only on demand.
"""

from syncd.plugin import hookimpl
from syncd_ms365.connector import Ms365Connector

__all__ = ["Ms365Connector", "syncd_cli_commands", "syncd_connectors"]


@hookimpl
def syncd_connectors():
    return [Ms365Connector]


@hookimpl
def syncd_cli_commands(subparsers):
    from syncd_ms365.cli import add_commands

    add_commands(subparsers)
