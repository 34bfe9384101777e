"""syncd plugin for the Notebook address book (an example to copy)."""

from syncd.plugin import hookimpl
from syncd_example.connector import NotebookConnector

__all__ = ["NotebookConnector", "syncd_connectors"]


@hookimpl
def syncd_connectors():
    return [NotebookConnector]
