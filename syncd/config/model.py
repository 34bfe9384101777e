"""The validated config, as the rest of syncd sees it: frozen dataclasses.

The loader (:mod:`syncd.config.loader`) builds these from a TOML file, or reports every
problem with the file, the key and the fix. Nothing else reads TOML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DaemonConfig:
    state_dir: str = "/var/lib/syncd"
    log_level: str = "info"  # debug | info | warning | error
    log_format: str = "auto"  # auto | json | console
    #: Days the journal behind `syncd explain` keeps what syncd decided and why.
    journal_days: float = 7.0
    stop_timeout: float = 30.0  # seconds to finish in-flight work on SIGTERM
    restart_backoff_max: float = 60.0  # seconds: cap of a crashed actor's restart back-off
    durability: str = "full"  # full (synchronous=FULL, survives power loss) | normal


@dataclass(frozen=True)
class ReceiverConfig:
    host: str = "127.0.0.1"
    port: int = 8470
    #: The URL partners reach the receiver at (behind the TLS proxy); webhooks are
    #: registered as ``{public_url}/webhooks/{connection}``. Empty: no registration.
    public_url: str = ""
    max_body_bytes: int = 65_536
    threads: int = 8
    connection_limit: int = 100  # open connections at once; more wait in the backlog


@dataclass(frozen=True)
class AdminConfig:
    host: str = "127.0.0.1"  # loopback only: the loader refuses anything else
    port: int = 8471
    #: File holding the bearer token of the admin endpoint (mode 0600). Empty:
    #: ``{state_dir}/admin.token``, created on first start.
    token_file: str = ""
    #: A listener of its own for /metrics, /healthz and /readyz (0: none).
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"


@dataclass(frozen=True)
class ConnectionConfig:
    name: str
    kind: str
    #: The connector's own options, validated against its ``options``, defaults filled,
    #: secrets as :class:`syncd.config.schema.Secret`.
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Condition:
    field: str
    value: Any


@dataclass(frozen=True)
class ConsentMapping:
    label: str  # the CRM's opt-in label (Tribe) or consent type (Lime)
    topic: str  # the destination's subscription / topic
    channel: str  # "email" | "sms"


@dataclass(frozen=True)
class Schedule:
    """A daily wall-clock time in an IANA time zone, optionally on some weekdays only."""

    at: str  # "HH:MM", 24-hour
    timezone: str  # IANA name, e.g. "Europe/Amsterdam"
    days: tuple[str, ...] = ()  # "mon" ... "sun"; empty: every day

    @property
    def hour(self) -> int:
        return int(self.at.split(":")[0])

    @property
    def minute(self) -> int:
        return int(self.at.split(":")[1])

    def __str__(self) -> str:
        days = f" on {','.join(self.days)}" if self.days else ""
        return f"{self.at} {self.timezone}{days}"


@dataclass(frozen=True)
class Overview:
    name: str  # the CRM's overview (saved view) name
    tag: str  # the destination tag put on its contacts
    #: None: imported on demand only (``syncd overview import INTEGRATION NAME``).
    schedule: Schedule | None = None


@dataclass(frozen=True)
class IntegrationConfig:
    name: str
    source: str  # connection name
    destination: str  # connection name
    #: All must hold for a record to be synced (``field = value``).
    conditions: tuple[Condition, ...] = ()
    #: Source field path -> destination attribute. E-mail and id are mapped automatically.
    fields: dict[str, str] = field(default_factory=dict)
    consents: tuple[ConsentMapping, ...] = ()
    #: Source selection name -> destination tag.
    selections: dict[str, str] = field(default_factory=dict)
    page_size: int = 200
    batch_size: int = 100
    enabled: bool = True
    delete_unmatched: bool = False
    full_sync_on_mapping_change: bool = False
    #: Hold consent changes and deletes past this share of the profiles, per window.
    confirm_share: float = 0.1
    #: Seconds over which the stop-and-confirm guard counts consent flips and deletes.
    confirm_window: float = 86400.0
    #: Attempts before a real-time event goes to the dead letters.
    max_attempts: int = 8
    #: Full syncs of more records than this use the destination's bulk imports (0: never).
    bulk_threshold: int = 10000
    bulk_batch: int = 5000
    #: Writes a run probes first: when they all fail with one non-retryable status, the run
    #: stops (the real-time path pauses) with one error (0: off).
    fail_fast: int = 20
    #: Seconds between reads of consents changed in the destination (written back).
    consent_poll_interval: float = 300.0
    #: When the daily job creating new contacts runs (the safety net for missed webhooks);
    #: None: no such job.
    daily_creation: Schedule | None = None
    #: Seconds each daily creation window reaches back before the previous run's start.
    daily_creation_overlap: float = 3600.0
    overviews: tuple[Overview, ...] = ()
    #: Response data: the event types written back to the source (empty: none), seconds
    #: between runs, events per batch and per second at most.
    response_events: tuple[str, ...] = ()
    responses_interval: float = 900.0
    responses_batch: int = 20
    responses_rate: float = 10.0
    #: Tasks from automation: the endpoint's secret (None: no endpoint), templates, rules.
    tasks_secret: Any = None
    task_subject: str = "Follow up: {campaign}"
    task_description: str = ""
    task_due_days: float = 3.0
    task_assignee_rule: str = "account_manager"
    task_fallback_employee: str = ""
    #: What dry runs compare the source with: "auto" (the destination read live when its
    #: connector can, else what syncd knows), "live" (a live read, required), "known".
    dry_run_read: str = "auto"


@dataclass(frozen=True)
class Config:
    path: str
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    receiver: ReceiverConfig = field(default_factory=ReceiverConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    connections: dict[str, ConnectionConfig] = field(default_factory=dict)
    integrations: dict[str, IntegrationConfig] = field(default_factory=dict)

    def integrations_from(self, connection: str) -> list[IntegrationConfig]:
        """The enabled integrations whose source is ``connection``."""
        return [i for i in self.integrations.values() if i.enabled and i.source == connection]
