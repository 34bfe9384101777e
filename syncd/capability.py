"""The names of what a connector can do (:class:`Capability`), below every layer: the config
checks an integration's settings against them (:func:`syncd.config.needs.required`), a
connector declares them, the engine asks for them. The typed methods each one obliges a
connector to have are its protocol in :mod:`syncd.connectors.capabilities`.
"""

from __future__ import annotations

import enum


class Capability(enum.StrEnum):
    """What a connector can do; :data:`syncd.connectors.capabilities.PROTOCOLS`
    names the methods each one obliges it to
    have."""

    READ_RECORDS = "read_records"
    PARSE_WEBHOOKS = "parse_webhooks"
    WRITE_PROFILES = "write_profiles"
    DELETE_PROFILES = "delete_profiles"
    READ_CONSENT_CHANGES = "read_consent_changes"
    WRITE_CONSENTS = "write_consents"
    READ_GROUPS = "read_groups"
    BULK_WRITE = "bulk_write"
    READ_RECORD = "read_record"
    CHECK_SCHEMA = "check_schema"
    READ_RESPONSES = "read_responses"
    WRITE_RESPONSES = "write_responses"
    CREATE_TASKS = "create_tasks"
    READ_PROFILES = "read_profiles"
