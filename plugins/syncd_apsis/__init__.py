"""The APSIS One connector for syncd: a destination that writes profiles (attributes,
consents 2.0, tags) into one section and deletes them, plus an emulator of the API.

Registered through the ``syncd`` entry point group, exactly as a third-party plugin would be.
"""

from syncd.plugin import hookimpl
from syncd_apsis.connector import ApsisConnector

__all__ = ["ApsisConnector", "syncd_connectors"]


@hookimpl
def syncd_connectors():
    return [ApsisConnector]
