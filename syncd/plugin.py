"""The public API of syncd for connector plugins: import everything from here.

A plugin (first-party ones included) imports only this module of syncd::

    from syncd.plugin import Capability, Connector, Record, WriteResult, hookimpl

and the pytest plugin :mod:`syncd.testing` in its tests. Every name below is part of the
contract: names are added, never renamed or removed, so that a plugin written against one
version of syncd keeps working with the next. Where a name lives inside syncd is not part of
the contract (modules may move); that it is importable from here is.

What a connector is and what each capability obliges it to do is written in
``docs/plugins.md``.
"""

from __future__ import annotations

from syncd.config.needs import connection_key
from syncd.config.schema import REQUIRED, Option, Secret
from syncd.config.sections import toml_key
from syncd.connectors.calls import carry_context, for_records, report_call
from syncd.connectors.capabilities import (
    PROTOCOLS,
    BulkWriter,
    CapabilityMissing,
    ConsentChangeReader,
    ConsentWriter,
    DirectReader,
    GroupReader,
    ProfileDeleter,
    ProfileReader,
    ProfileWriter,
    RecordReader,
    WebhookSource,
)
from syncd.connectors.connector import (
    REQUIRED_METHODS,
    Capability,
    Connector,
    SchemaChecker,
    WebhookParser,
    missing_methods,
)
from syncd.connectors.hookspecs import hookimpl, hookspec
from syncd.connectors.httpclient import (
    Auth,
    ClientCredentials,
    HttpClient,
    KeyedRateBudget,
    RateBudget,
    StaticToken,
    parse_retry_after,
    transport_errors,
)
from syncd.connectors.lanes import LanePools, realtime_workers
from syncd.connectors.ledger import Ledger
from syncd.connectors.pooled import PooledClient
from syncd.engagement import (
    EngagementBatch,
    EngagementEvent,
    EngagementReader,
    EngagementWriter,
    TaskCreator,
    TaskRequest,
    TaskResult,
    activity_subject,
)
from syncd.engine.failfast import FailFast
from syncd.engine.linkops import LinkRun, Links, NoLinks
from syncd.engine.preflight import missing
from syncd.engine.twoway import Conflict, Decision, decide, over_share
from syncd.exceptions import AuthError, RemoteError, SyncdError, WebhookRejected
from syncd.records import (
    Consent,
    ConsentChange,
    Event,
    Need,
    NeedKind,
    Page,
    Profile,
    ProfileState,
    Record,
    Scalar,
    SchemaNeeds,
    SchemaProblem,
    WriteResult,
)
from syncd.web.emulator import (
    Emulator,
    Faults,
    TokenIssuer,
    WebhookDelivery,
    WebhookSender,
    retry_after_header,
)
from syncd.web.wsgi import HTTPError, Request, Router, ServerThread


def config_path(explicit: str | None = None) -> str:
    """The config file a plugin's CLI command reads: ``-c FILE``, else ``$SYNCD_CONFIG``,
    else the default, as the core's commands do."""
    import os

    return explicit or os.environ.get("SYNCD_CONFIG") or "/etc/syncd/syncd.toml"


def load_config(path: str):
    """The validated config in ``path`` with the installed plugins (for a plugin's CLI
    commands); raises :class:`syncd.exceptions.ConfigErrors` listing every problem."""
    from syncd.config import load
    from syncd.connectors.plugins import load as load_plugins

    return load(path, load_plugins())

__all__ = [
    # hooks
    "hookimpl",
    "hookspec",
    # the connector and its capabilities
    "Connector",
    "Capability",
    "REQUIRED_METHODS",
    "missing_methods",
    "SchemaChecker",
    "WebhookParser",
    "PROTOCOLS",
    "RecordReader",
    "WebhookSource",
    "ProfileWriter",
    "ProfileDeleter",
    "ProfileReader",
    "ConsentChangeReader",
    "ConsentWriter",
    "GroupReader",
    "BulkWriter",
    "DirectReader",
    "CapabilityMissing",
    # what a connector remembers across restarts (Connector.ledger)
    "Ledger",
    # connection options
    "Option",
    "REQUIRED",
    "Secret",
    "toml_key",
    # the values that travel between connectors and the core
    "Record",
    "Scalar",
    "Event",
    "Page",
    "Profile",
    "ProfileState",
    "Consent",
    "ConsentChange",
    "WriteResult",
    # response data and tasks (read_responses, write_responses, create_tasks)
    "EngagementEvent",
    "EngagementBatch",
    "EngagementReader",
    "EngagementWriter",
    "TaskCreator",
    "TaskRequest",
    "TaskResult",
    "activity_subject",
    # preflight (check_schema)
    "Need",
    "NeedKind",
    "SchemaNeeds",
    "SchemaProblem",
    "connection_key",
    "missing",
    # exceptions a connector raises
    "SyncdError",
    "RemoteError",
    "AuthError",
    "WebhookRejected",
    # the shared HTTP client
    "HttpClient",
    "PooledClient",
    "LanePools",
    "realtime_workers",
    "Auth",
    "ClientCredentials",
    "StaticToken",
    "RateBudget",
    "KeyedRateBudget",
    "parse_retry_after",
    "transport_errors",
    # marking the HTTP calls made for records (syncd explain shows them)
    "for_records",
    "carry_context",
    "report_call",
    # emulators of the partner's API (real HTTP servers on loopback)
    "Emulator",
    "Faults",
    "TokenIssuer",
    "retry_after_header",
    "WebhookSender",
    "WebhookDelivery",
    "HTTPError",
    "Request",
    "Router",
    "ServerThread",
    # two-way links: the per-field decision (syncd.engine.twoway)
    "decide",
    "Decision",
    "Conflict",
    # operating a connector's own links: runs, guard (over_share), fail-fast, stops
    "Links",
    "LinkRun",
    "NoLinks",
    "FailFast",
    "over_share",
    # a plugin's own CLI commands (hook syncd_cli_commands)
    "config_path",
    "load_config",
]
