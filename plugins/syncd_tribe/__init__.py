"""The Tribe CRM connector for syncd: persons and their contacts as records, read back on
signed webhooks, plus an emulator of the Tribe API for tests and the sandbox.

Modules: :mod:`.connector` (the connector), :mod:`.client` (the API client),
:mod:`.webhooks` (signature and envelope), :mod:`.odata` (OData literals and the filter
parser), and the emulator: :mod:`.emulator`, :mod:`.emulator_store`, :mod:`.emulator_seed`,
:mod:`.emulator_sender` (imported only on demand).
"""

from syncd.plugin import hookimpl
from syncd_tribe.connector import TribeConnector

__all__ = ["TribeConnector", "syncd_connectors"]


@hookimpl
def syncd_connectors():
    return [TribeConnector]
