"""What a reload changes, and the config as plain data with its secrets masked.

:func:`diff` tells the daemon what to restart after SIGHUP and which integrations need a full
sync: changed field or consent mappings do (the profiles already written carry the old
mapping), and so does a changed option of a connection an integration reads from or writes
to, unless it is only about transport (time-outs, rate limits, credentials). Changed
conditions, selections or other settings take effect on the next record and need none;
changed overviews and schedules (``daily_creation``, an overview's ``schedule``) need none
either (seed 001), but do make the integration changed, so the daemon reconciles its jobs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from syncd.config.model import Config, IntegrationConfig
from syncd.config.schema import Secret

#: Connection options that only change how a partner is reached, not which data flows:
#: changing them restarts the connection but needs no full sync. Secret-valued options are
#: always treated so. A connector may name more in a ``transport_options`` class attribute.
TRANSPORT_OPTIONS = frozenset({
    "timeout", "max_attempts", "requests_per_second", "per_profile_per_second", "concurrency",
    "client_id", "auth", "token_url", "scope", "signature_header",
})

#: Integration settings whose change needs a full sync (never overviews or schedules).
_MAPPING_FIELDS = ("source", "destination", "fields", "consents")


@dataclass(frozen=True)
class ConfigDiff:
    connections_added: tuple[str, ...] = ()
    connections_removed: tuple[str, ...] = ()
    #: Kind or options differ: the connection's actor must be restarted.
    connections_changed: tuple[str, ...] = ()
    integrations_added: tuple[str, ...] = ()
    integrations_removed: tuple[str, ...] = ()
    #: Any setting differs (mappings, conditions, selections, sizes, enabled ...).
    integrations_changed: tuple[str, ...] = ()
    #: Integration name -> why it needs a full sync (only changed integrations; a new one
    #: is listed in ``integrations_added``).
    full_sync: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    daemon_changed: bool = False
    receiver_changed: bool = False
    admin_changed: bool = False
    #: Kept, unchanged integrations whose source or destination connection changed.
    integrations_via_connections: tuple[str, ...] = ()

    @property
    def needs_full_sync(self) -> tuple[str, ...]:
        return tuple(sorted(self.full_sync))

    @property
    def restart_listeners(self) -> bool:
        """The webhook receiver or the admin endpoint must be restarted."""
        return self.receiver_changed or self.admin_changed

    @property
    def integrations_affected(self) -> tuple[str, ...]:
        """Integrations to restart: changed ones, removed ones, and the kept ones whose
        source or destination connection changed (names sorted)."""
        return tuple(sorted({*self.integrations_changed, *self.integrations_removed,
                             *self.integrations_via_connections}))

    def __bool__(self) -> bool:
        return any((self.connections_added, self.connections_removed, self.connections_changed,
                    self.integrations_added, self.integrations_removed,
                    self.integrations_changed, self.daemon_changed, self.receiver_changed,
                    self.admin_changed))


def diff(old: Config, new: Config, registry: Any = None) -> ConfigDiff:
    """What changes from ``old`` to ``new``. ``registry`` (optional) lets a connector class
    name extra ``transport_options``."""
    oc, nc = old.connections, new.connections
    changed_conn = {n for n in oc.keys() & nc.keys() if oc[n] != nc[n]}
    oi, ni = old.integrations, new.integrations
    changed_int = sorted(n for n in oi.keys() & ni.keys() if oi[n] != ni[n])
    full_sync: dict[str, tuple[str, ...]] = {}
    via: set[str] = set()
    for name in sorted(oi.keys() & ni.keys()):
        before, after = oi[name], ni[name]
        reasons = [f"{f} changed" for f in _MAPPING_FIELDS
                   if getattr(before, f) != getattr(after, f)]
        for role in ("source", "destination"):
            conn = getattr(after, role)
            if conn == getattr(before, role) and conn in changed_conn:
                if before == after:
                    via.add(name)
                data = _data_options_changed(oc[conn], nc[conn], registry)
                if data:
                    reasons.append(f"{role} connection `{conn}` changed: {', '.join(data)}")
        if reasons:
            full_sync[name] = tuple(reasons)
    return ConfigDiff(
        connections_added=tuple(sorted(nc.keys() - oc.keys())),
        connections_removed=tuple(sorted(oc.keys() - nc.keys())),
        connections_changed=tuple(sorted(changed_conn)),
        integrations_added=tuple(sorted(ni.keys() - oi.keys())),
        integrations_removed=tuple(sorted(oi.keys() - ni.keys())),
        integrations_changed=tuple(changed_int),
        full_sync=full_sync,
        daemon_changed=old.daemon != new.daemon,
        receiver_changed=old.receiver != new.receiver,
        admin_changed=old.admin != new.admin,
        integrations_via_connections=tuple(sorted(via)),
    )


def _data_options_changed(old, new, registry) -> list[str]:
    """The changed options of a connection that change which data flows."""
    if old.kind != new.kind:
        return ["kind"]
    transport = set(TRANSPORT_OPTIONS)
    cls = registry.connector(new.kind) if registry is not None else None
    transport |= set(getattr(cls, "transport_options", ()) or ())
    keys = old.options.keys() | new.options.keys()
    return sorted(
        k for k in keys
        if old.options.get(k) != new.options.get(k) and k not in transport
        and not isinstance(old.options.get(k), Secret)
        and not isinstance(new.options.get(k), Secret))


def describe(config: Config) -> dict[str, Any]:
    """The config as plain data (for ``syncd status`` and logs); every secret is ``"***"``."""
    return {
        "path": config.path,
        "daemon": dataclasses.asdict(config.daemon),
        "receiver": dataclasses.asdict(config.receiver),
        "admin": dataclasses.asdict(config.admin),
        "connections": {
            name: {"kind": c.kind, **{k: _plain(v) for k, v in c.options.items()}}
            for name, c in config.connections.items()
        },
        "integrations": {name: _integration(i) for name, i in config.integrations.items()},
    }


def _integration(i: IntegrationConfig) -> dict[str, Any]:
    data = {f.name: _plain(getattr(i, f.name)) for f in dataclasses.fields(i)}
    data["conditions"] = {c.field: _plain(c.value) for c in i.conditions}
    data["consents"] = [dataclasses.asdict(c) for c in i.consents]
    return data


def _plain(value: Any) -> Any:
    if isinstance(value, Secret):
        return "***"
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value
