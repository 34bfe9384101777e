"""syncd's config: TOML read, validated whole, and turned into frozen dataclasses.

- :func:`load` reads and validates a file, raising :class:`~syncd.exceptions.ConfigErrors`
  with every problem (file, key, fix); :func:`check` returns them as lines.
- :func:`diff` says what a reload changes and which integrations need a full sync.
- :func:`describe` gives the config as plain data with secrets masked.
- :data:`CORE_SECTIONS` declares the core's sections with :class:`Option`, as connectors do.

The config sits below the connectors and the engine and imports neither: the loader is
given the plugin registry and knows the connector classes through the protocols of
:mod:`syncd.config.plugins` (docs/architecture.md, "Layers").
"""

from syncd.config.diff import ConfigDiff, describe, diff
from syncd.config.loader import check, load
from syncd.config.model import (
    AdminConfig,
    Condition,
    Config,
    ConnectionConfig,
    ConsentMapping,
    DaemonConfig,
    IntegrationConfig,
    ReceiverConfig,
)
from syncd.config.schema import REQUIRED, Option, Secret
from syncd.config.sections import CORE_SECTIONS

__all__ = [
    "AdminConfig", "CORE_SECTIONS", "Condition", "Config", "ConfigDiff", "ConnectionConfig",
    "ConsentMapping", "DaemonConfig", "IntegrationConfig", "Option", "REQUIRED",
    "ReceiverConfig", "Secret", "check", "describe", "diff", "load",
]
