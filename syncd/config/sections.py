"""The core's config sections, and the checks every section (core or connector) goes through.

The core sections are declared here with the same :class:`~syncd.config.schema.Option` a
connector uses for its ``[connections.NAME]`` section, so one validator, one set of error
messages and one documentation test serve both. :func:`validate_options` checks one table
against its options: unknown keys (with a "did you mean"), missing required keys, types,
choices, bounds and secrets (:mod:`syncd.config.checks`). Every problem goes into the loader's
``Problems``; nothing raises.
"""

from __future__ import annotations

import re

# the checks and helpers, kept importable from here
from syncd.config.checks import check_value as check_value
from syncd.config.checks import describe_type as describe_type
from syncd.config.checks import did_you_mean as did_you_mean
from syncd.config.checks import example as example
from syncd.config.checks import example_line as example_line
from syncd.config.checks import is_loopback_host as is_loopback_host
from syncd.config.checks import kind_of as kind_of
from syncd.config.checks import resolve_path as resolve_path
from syncd.config.checks import shown as shown
from syncd.config.checks import toml_key as toml_key
from syncd.config.checks import toml_value as toml_value
from syncd.config.checks import unknown_key_fix as unknown_key_fix
from syncd.config.checks import validate_options as validate_options
from syncd.config.schema import REQUIRED, Option, Secret

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("auto", "json", "console")
CHANNELS = ("email", "sms")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SCHEDULE_EXAMPLE = '{ at = "02:30", timezone = "Europe/Amsterdam" }'

DAEMON_OPTIONS: tuple[Option, ...] = (
    Option("state_dir", str, "/var/lib/syncd",
           "Directory of the SQLite state: the inbox of real-time events, the id links, "
           "cursors and the history of runs. A relative path is resolved against the "
           "directory of this file."),
    Option("log_level", str, "info", "The lowest level that is logged.", choices=LOG_LEVELS),
    Option("log_format", str, "auto",
           "How log lines are rendered: json (for journald), console (key=value), or auto "
           "(json under systemd or when output is not a terminal).", choices=LOG_FORMATS),
    Option("journal_days", float, 7.0,
           "Days the journal behind `syncd explain` keeps each contact's decisions, guard "
           "holds, the partners' answers and the HTTP calls made for it (never secrets); "
           "older entries are pruned hourly.", minimum=0.0),
    Option("stop_timeout", float, 30.0,
           "Seconds to finish in-flight work on SIGTERM before stopping anyway.", minimum=0),
    Option("restart_backoff_max", float, 60.0,
           "Seconds: the cap of the back-off before a crashed actor is restarted.", minimum=0),
    Option("durability", str, "full",
           "When a webhook is acknowledged, its event is on disk: \"full\" survives a power "
           "loss (SQLite synchronous=FULL), \"normal\" only a crash of syncd. Webhooks that "
           "arrive together share one commit, so \"full\" costs little. Takes effect on "
           "restart.", choices=("full", "normal")),
)

RECEIVER_OPTIONS: tuple[Option, ...] = (
    Option("host", str, "127.0.0.1",
           "Address the webhook receiver listens on (it speaks plain HTTP: put a TLS proxy "
           "in front of it)."),
    Option("port", int, 8470, "Port of the webhook receiver (0 picks a free port).",
           minimum=0, maximum=65535),
    Option("public_url", str, "",
           "The https URL partners reach the receiver at, through the TLS proxy. Webhooks are "
           "registered as {public_url}/webhooks/{connection}. Empty: no registration."),
    Option("max_body_bytes", int, 65_536,
           "Largest webhook body accepted; a larger one is answered 413. Webhooks carry ids "
           "only, so 64 KiB is plenty; the receiver buffers at most about twice this per "
           "connection.", minimum=1),
    Option("threads", int, 8, "Worker threads of the receiver.", minimum=1, maximum=256),
    Option("connection_limit", int, 100,
           "Most connections the receiver keeps open at once; more wait in the listen "
           "backlog until one closes (with max_body_bytes, this caps the memory senders can "
           "make it hold).", minimum=1, maximum=10_000),
)

ADMIN_OPTIONS: tuple[Option, ...] = (
    Option("host", str, "127.0.0.1",
           "Address of the admin endpoint the CLI talks to. Loopback only: 127.0.0.1, ::1 "
           "or localhost."),
    Option("port", int, 8471, "Port of the admin endpoint (0 picks a free port).",
           minimum=0, maximum=65535),
    Option("token_file", str, "",
           "File holding the admin endpoint's bearer token (mode 0600). Empty: "
           "{state_dir}/admin.token, created on first start. A relative path is resolved "
           "against the directory of this file."),
    Option("metrics_port", int, 0,
           "A port of its own for /metrics (and /healthz, /readyz), without the admin token, "
           "for a Prometheus on another host. 0: none (the admin endpoint serves them on "
           "loopback anyway).", minimum=0, maximum=65535),
    Option("metrics_host", str, "127.0.0.1",
           "Address the metrics_port listens on (e.g. 0.0.0.0 for a Prometheus elsewhere)."),
)

#: The core's keys of a ``[connections.NAME]`` section; the connector's own options follow.
CONNECTION_OPTIONS: tuple[Option, ...] = (
    Option("kind", str, REQUIRED,
           "The connector that serves this connection (see `syncd plugins`)."),
)

INTEGRATION_OPTIONS: tuple[Option, ...] = (
    Option("source", str, REQUIRED,
           "The connection records are read from (its connector must read records)."),
    Option("destination", str, REQUIRED,
           "The connection profiles are written to (its connector must write profiles)."),
    Option("conditions", dict, {},
           'Sync conditions: a table of "Field.Path" = value; only records for which all '
           "hold are synced. Changing them needs no full sync."),
    Option("fields", dict, {},
           'Field mapping: a table of "source.field.path" = "destination attribute". E-mail '
           "and record id are mapped automatically. Changing it needs a full sync."),
    Option("consents", list,
           [], "Consent mappings: an array of tables { label, topic, channel }, one channel "
           "per mapping. Changing them needs a full sync.", item_type=dict),
    Option("selections", dict, {},
           'Selections: a table of "selection name" = "destination tag".'),
    Option("page_size", int, 200, "Records read per page in a full sync.",
           minimum=1, maximum=5000),
    Option("batch_size", int, 100, "Profiles written per request.", minimum=1, maximum=1000),
    Option("enabled", bool, True,
           "false keeps the integration configured but idle. Webhooks of a source whose "
           "integrations are all disabled are answered 503 with Retry-After (the sender keeps "
           "them)."),
    Option("delete_unmatched", bool, False,
           "Delete destination profiles whose record no longer meets the conditions, once "
           "a direct read of the record confirms it (not found, or no longer matching)."),
    Option("full_sync_on_mapping_change", bool, False,
           "Start a full sync by itself when a reload changes field or consent mappings."),
    Option("confirm_share", float, 0.1,
           "Consent changes (opt-in/opt-out flips, write-backs) and deletes past this share "
           "of the profiles syncd keeps (at least 10) within `confirm_window` are held until "
           "a person runs `syncd confirm NAME` (1: no limit).", minimum=0, maximum=1),
    Option("confirm_window", float, 86400.0,
           "Seconds over which the stop-and-confirm guard counts consent changes and "
           "deletes, across runs, resumes and restarts.", minimum=60),
    Option("max_attempts", int, 8,
           "Attempts before a real-time event goes to the dead letters.", minimum=1),
    Option("bulk_threshold", int, 10000,
           "A full sync of more records than this writes through the destination's bulk "
           "import API, when it has one (0: never).", minimum=0),
    Option("bulk_batch", int, 5000,
           "Profiles per bulk import.", minimum=100, maximum=50000),
    Option("fail_fast", int, 20,
           "The first writes of a run are sent as a probe of this size: when they all fail "
           "with one non-retryable status, the run stops (the real-time path pauses, its "
           "events kept) with one error naming the status, the endpoint, the partner's "
           "message and the likely fix (0: off).", minimum=0, maximum=1000),
    Option("consent_poll_interval", float, 300.0,
           "Seconds between reads of the consents changed in the destination (unsubscribes), "
           "which are written back to the source.", minimum=10),
    Option("daily_creation", dict, None,
           "When the daily job that creates completely new contacts runs (the safety net for "
           f"missed webhooks), a schedule like {SCHEDULE_EXAMPLE}. Absent: no such job."),
    Option("daily_creation_overlap", float, 3600.0,
           "Seconds each daily creation window reaches back before the previous run's start.",
           minimum=0),
    Option("overviews", list, [],
           "CRM overviews imported as destination tags: an array of tables "
           "{ name, tag, schedule }.", item_type=dict),
    Option("response_events", list, [],
           "Response data written back to the CRM: the event types to write, of "
           "email_sent, email_delivered, email_bounced, email_opened, email_clicked, "
           "email_unsubscribed, sms_delivered, sms_undelivered, sms_opened, sms_clicked. "
           "Empty: no response data.", item_type=str),
    Option("responses_interval", float, 900.0,
           "Seconds between two response-data runs (each reads the destination's event "
           "export since the last one).", minimum=60),
    Option("responses_batch", int, 20,
           "Events written per batch; real-time events pass between two batches.",
           minimum=1, maximum=500),
    Option("responses_rate", float, 10.0,
           "Events written per second at most, so a backlog leaves the CRM's budget to "
           "real-time sync (0: no pacing).", minimum=0),
    Option("tasks_secret", Secret, None,
           "Shared secret of this integration's task endpoint (`/tasks/NAME`), sent by the "
           "automation flow as `Authorization: Bearer <secret>`. Absent: no task endpoint."),
    Option("task_subject", str, "Follow up: {campaign}",
           "Template of a task's subject when the call sends none ({name} takes the call's "
           "value of that name)."),
    Option("task_description", str, "",
           "Template of a task's description when the call sends none."),
    Option("task_due_days", float, 3.0,
           "Days from the call to the task's due date when the call sends no `due`.",
           minimum=0),
    Option("task_assignee_rule", str, "account_manager",
           "Who gets a task whose call names no employee: account_manager (the contact's "
           "account manager in the CRM) or none (only task_fallback_employee).",
           choices=("account_manager", "none")),
    Option("task_fallback_employee", str, "",
           "The CRM employee id that gets a task when neither the call nor the rule names "
           "one (empty: such a call is refused with 422)."),
    Option("dry_run_read", str, "auto",
           "What `syncd sync start --dry-run` compares the source with: auto (the "
           "destination's profiles read live when its connector has read_profiles, else "
           "what syncd knows of them, labelled so in the plan), live (a live read; the "
           "destination's connector must have read_profiles) or known (what syncd knows: "
           "the links, the opt-outs read, the attributes it last sent; no read).",
           choices=("auto", "live", "known")),
)

#: The event types ``response_events`` may name.
RESPONSE_EVENT_TYPES = ("email_sent", "email_delivered", "email_bounced", "email_opened",
                        "email_clicked", "email_unsubscribed", "sms_delivered",
                        "sms_undelivered", "sms_opened", "sms_clicked")

#: The keys of one ``[[integrations.NAME.consents]]`` mapping.
CONSENT_OPTIONS: tuple[Option, ...] = (
    Option("label", str, REQUIRED, "The CRM's opt-in label (Tribe) or consent type (Lime)."),
    Option("topic", str, REQUIRED, "The destination's subscription (APSIS topic)."),
    Option("channel", str, REQUIRED, "email or sms: one channel per mapping.", choices=CHANNELS),
)

#: The keys of a schedule table, e.g. ``daily_creation = { at = "02:30", timezone = "..." }``.
SCHEDULE_OPTIONS: tuple[Option, ...] = (
    Option("at", str, REQUIRED, 'The local time, 24-hour "HH:MM".'),
    Option("timezone", str, REQUIRED, 'The IANA time zone of `at`, e.g. "Europe/Amsterdam".'),
    Option("days", list, [], 'Weekdays to run on ("mon" ... "sun"). Default: every day.',
           item_type=str),
)

#: The keys of one ``[[integrations.NAME.overviews]]`` table.
OVERVIEW_OPTIONS: tuple[Option, ...] = (
    Option("name", str, REQUIRED, "The CRM overview (saved view) whose contacts are imported."),
    Option("tag", str, REQUIRED, "The destination tag put on the overview's contacts."),
    Option("schedule", dict, None,
           f"When it is imported every day, e.g. {SCHEDULE_EXAMPLE}. Absent: on demand only "
           "(`syncd overview import INTEGRATION NAME`)."),
)

#: Every core section's options; ``*`` stands for any connection or integration name.
CORE_SECTIONS: dict[str, tuple[Option, ...]] = {
    "daemon": DAEMON_OPTIONS,
    "receiver": RECEIVER_OPTIONS,
    "admin": ADMIN_OPTIONS,
    "connections.*": CONNECTION_OPTIONS,
    "integrations.*": INTEGRATION_OPTIONS,
    "integrations.*.consents": CONSENT_OPTIONS,
    "integrations.*.overviews": OVERVIEW_OPTIONS,
}

#: Core options holding a path resolved against the config file's directory.
PATH_OPTIONS = frozenset({"daemon.state_dir", "admin.token_file"})

NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
