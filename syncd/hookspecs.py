"""The hooks a syncd plugin may implement. Every hook is prefixed ``syncd_``.

A plugin is a module (or package) named by an entry point in the group ``syncd``::

    [project.entry-points.syncd]
    mycrm = "syncd_mycrm"

and marks its hook implementations with :data:`hookimpl`::

    from syncd.hookspecs import hookimpl

    @hookimpl
    def syncd_connectors():
        return [MyCrmConnector]

syncd's own connectors are registered exactly this way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from syncd.connector import Connector

PROJECT = "syncd"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def syncd_connectors() -> list[type[Connector]]:
    """Return the connector classes this plugin provides.

    Called once when plugins are loaded, before the config is validated (the config's
    ``kind`` keys name these classes' ``kind``). Each class must subclass
    :class:`syncd.connector.Connector`, set a unique ``kind`` and implement the methods
    its ``capabilities`` require; a class that does not is reported as failed in
    ``syncd plugins`` and the daemon runs on without it.

    Not ``firstresult``: the lists of all plugins are joined.
    """
