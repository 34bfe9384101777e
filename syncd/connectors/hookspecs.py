"""The hooks a syncd plugin may implement. Every hook is prefixed ``syncd_``.

A plugin is a module (or package) named by an entry point in the group ``syncd``::

    [project.entry-points.syncd]
    mycrm = "syncd_mycrm"

and marks its hook implementations with :data:`hookimpl`::

    from syncd.connectors.hookspecs import hookimpl

    @hookimpl
    def syncd_connectors():
        return [MyCrmConnector]

syncd's own connectors are registered exactly this way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from syncd.connectors.connector import Connector

PROJECT = "syncd"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# A spec's body is never called (pluggy calls the plugins' implementations): empty-body.
@hookspec
def syncd_connectors() -> list[type[Connector]]:  # type: ignore[empty-body]
    """Return the connector classes this plugin provides.

    Called once when plugins are loaded, before the config is validated (the config's
    ``kind`` keys name these classes' ``kind``). Each class must subclass
    :class:`syncd.connectors.connector.Connector`, set a unique ``kind`` and implement the methods
    its ``capabilities`` require; a class that does not is reported as failed in
    ``syncd plugins`` and the daemon runs on without it.

    Not ``firstresult``: the lists of all plugins are joined.
    """


@hookspec
def syncd_cli_commands(subparsers) -> None:
    """Add the plugin's own ``syncd`` subcommands.

    ``subparsers`` is the ``argparse`` object of ``syncd``'s commands: call
    ``subparsers.add_parser(NAME, help=...)`` and ``set_defaults(func=handler)`` on what you
    add; ``handler(args)`` returns the exit code. Name commands after the plugin (e.g.
    ``syncd ms365 users``) so that they cannot clash with the core's or another plugin's;
    a name already taken is refused and the plugin's commands are left out (logged). A
    plugin whose hook raises loses its commands, never the CLI. Commands that need the
    config take ``-c FILE`` like the core's and load it with :func:`syncd.config.load`.
    """
