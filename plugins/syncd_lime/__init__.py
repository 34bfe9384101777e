"""The Lime CRM connector for syncd: persons (with their company and consents) as records,
read back on signed webhooks, plus an emulator of the Lime REST API for tests and the sandbox.

Modules: :mod:`.client` (the API client), :mod:`.paging` (HAL paging), :mod:`.webhooks`
(signature and envelope), and the emulator: :mod:`.emulator`, :mod:`.emulator_store`,
:mod:`.emulator_seed`, :mod:`.emulator_sender` (imported only on demand).
"""

from syncd.plugin import hookimpl
from syncd_lime.connector import LimeConnector

__all__ = ["LimeConnector", "syncd_connectors"]


@hookimpl
def syncd_connectors():
    return [LimeConnector]
