"""What the config loader needs to know of the loaded connectors, as protocols: the loader is
given a registry (:class:`syncd.connectors.plugins.Registry` is one) and checks each
connection's options, each integration's capabilities and names against the connector
classes it finds there. The config never imports the connectors: they sit above it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from syncd.capability import Capability
from syncd.config.schema import Option
from syncd.records import SchemaNeeds, SchemaProblem


class ConnectorClass(Protocol):
    """A connector class (a subclass of :class:`syncd.connectors.connector.Connector`)."""

    kind: str
    capabilities: frozenset[Capability]
    options: tuple[Option, ...]

    def validate(self, name: str, config: Mapping[str, Any]) -> list[str]: ...

    def validate_needs(self, name: str, config: Mapping[str, Any], needs: SchemaNeeds
                       ) -> list[SchemaProblem]: ...

    def canonical_attribute(self, name: str) -> str: ...


class PluginState(Protocol):
    """A plugin's load status (:class:`syncd.connectors.plugins.PluginStatus`)."""

    @property
    def name(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def reason(self) -> str | None: ...


class ConnectorRegistry(Protocol):
    """The connector classes by kind, and each plugin's status."""

    @property
    def connectors(self) -> Mapping[str, ConnectorClass]: ...

    @property
    def plugins(self) -> Sequence[PluginState]: ...

    def connector(self, kind: str) -> ConnectorClass | None: ...
