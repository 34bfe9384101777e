"""What an integration's settings need of its connections, derived from the config alone:

- :func:`required`: the capabilities (``delete_unmatched`` needs deletes of the
  destination, consents need consent changes and consent writes ...); the loader checks
  them against each connection's connector and names the setting that needs one;
- :func:`needs`: the names the enabled integrations use in each connection (field paths,
  labels, groups, attributes, topics, tags), each with the config key that names it; the
  loader hands them to each connector's offline ``validate_needs``, the preflight
  (:mod:`syncd.engine.preflight`) to its ``check_schema``.

The connectors are known here only through what the loader is given (:mod:`syncd.config.plugins`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from syncd.capability import Capability
from syncd.config.model import Config, IntegrationConfig
from syncd.config.plugins import ConnectorClass, ConnectorRegistry
from syncd.config.sections import toml_key
from syncd.records import Need, NeedKind, SchemaNeeds


@dataclass(frozen=True, slots=True)
class Requirement:
    """A capability a connection needs because of a setting (its config key, e.g.
    ``delete_unmatched``, relative to the integration's section)."""

    role: str  # "source" | "destination"
    capability: Capability
    setting: str


def required(integration: IntegrationConfig) -> list[Requirement]:
    """Every capability the integration's settings need of its two connections. Large full
    syncs need none: without :attr:`Capability.BULK_WRITE` they take the per-profile path."""
    needs = [Requirement("source", Capability.READ_RECORDS, "source"),
             Requirement("destination", Capability.WRITE_PROFILES, "destination")]
    if integration.consents:
        needs += [Requirement("destination", Capability.READ_CONSENT_CHANGES, "consents"),
                  Requirement("source", Capability.WRITE_CONSENTS, "consents")]
    if integration.selections:
        needs.append(Requirement("source", Capability.READ_GROUPS, "selections"))
    if integration.overviews:
        needs.append(Requirement("source", Capability.READ_GROUPS, "overviews"))
    if integration.delete_unmatched:
        needs += [Requirement("destination", Capability.DELETE_PROFILES, "delete_unmatched"),
                  Requirement("source", Capability.READ_RECORD, "delete_unmatched")]
    if integration.response_events:
        needs += [Requirement("destination", Capability.READ_RESPONSES, "response_events"),
                  Requirement("source", Capability.WRITE_RESPONSES, "response_events")]
    if integration.tasks_secret is not None:
        needs.append(Requirement("source", Capability.CREATE_TASKS, "tasks_secret"))
    if integration.dry_run_read == "live":  # "auto": a live read when the destination can
        needs.append(Requirement("destination", Capability.READ_PROFILES, "dry_run_read"))
    return needs


def integration_key(integration: str, *parts: str) -> str:
    return ".".join(("integrations", toml_key(integration), *parts))


def connection_key(connection: str, *parts: str) -> str:
    return ".".join(("connections", toml_key(connection), *parts))


def needs(config: Config, registry: ConnectorRegistry | None) -> dict[str, SchemaNeeds]:
    """What the enabled integrations name in each connection (every connection is listed,
    also one no integration uses: its own options are still checked)."""
    items: dict[str, list[Need]] = {name: [] for name in config.connections}
    roles: dict[str, set[str]] = {name: set() for name in config.connections}
    for integration in config.integrations.values():
        if not integration.enabled:
            continue
        src, dst = integration.source, integration.destination
        roles.setdefault(src, set()).add("source")
        roles.setdefault(dst, set()).add("destination")
        items.setdefault(src, []).extend(_source_needs(integration))
        dst_cls = connector_class(config, registry, dst)
        canonical = dst_cls.canonical_attribute if dst_cls is not None else (lambda n: n)
        items.setdefault(dst, []).extend(_destination_needs(integration, canonical))
    out = {}
    for name in config.connections:
        role = roles.get(name, set())
        word = "both" if len(role) == 2 else next(iter(role), "none")
        out[name] = SchemaNeeds(role=word, items=tuple(dict.fromkeys(items.get(name, []))))
    return out


def _source_needs(i: IntegrationConfig) -> list[Need]:
    n = i.name
    out = [Need(NeedKind.FIELD, c.field, integration_key(n, "conditions", toml_key(c.field)))
           for c in i.conditions]
    out += [Need(NeedKind.FIELD, src, integration_key(n, "fields", toml_key(src)))
            for src in i.fields]
    out += [Need(NeedKind.LABEL, c.label, integration_key(n, f"consents[{k}]", "label"))
            for k, c in enumerate(i.consents)]
    out += [Need(NeedKind.LABEL, sel, integration_key(n, "selections", toml_key(sel)))
            for sel in i.selections]
    out += [Need(NeedKind.GROUP, o.name, integration_key(n, f"overviews[{k}]", "name"))
            for k, o in enumerate(i.overviews)]
    if i.response_events:
        out.append(Need(NeedKind.RESPONSES, "response_events",
                        integration_key(n, "response_events")))
    if i.tasks_secret is not None:
        out.append(Need(NeedKind.TASKS, i.task_assignee_rule,
                        integration_key(n, "task_assignee_rule")))
    return out


def _destination_needs(i: IntegrationConfig, canonical: Callable[[str], str]) -> list[Need]:
    n = i.name
    out = [Need(NeedKind.ATTRIBUTE, canonical(dst), integration_key(n, "fields", toml_key(src)))
           for src, dst in i.fields.items()]
    for k, c in enumerate(i.consents):
        out.append(Need(NeedKind.TOPIC, c.topic, integration_key(n, f"consents[{k}]", "topic")))
        out.append(Need(NeedKind.CHANNEL, c.channel,
                        integration_key(n, f"consents[{k}]", "channel")))
    out += [Need(NeedKind.TAG, tag, integration_key(n, "selections", toml_key(sel)))
            for sel, tag in i.selections.items()]
    out += [Need(NeedKind.TAG, o.tag, integration_key(n, f"overviews[{k}]", "tag"))
            for k, o in enumerate(i.overviews)]
    return out


def connector_class(config: Config, registry: ConnectorRegistry | None, connection: str
                     ) -> ConnectorClass | None:
    conn = config.connections.get(connection)
    return registry.connector(conn.kind) if conn is not None and registry is not None else None
