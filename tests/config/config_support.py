"""Fake connectors and texts shared by the config tests."""


from __future__ import annotations

from syncd.config.schema import REQUIRED, Option, Secret
from syncd.connectors.connector import Capability, Connector

SECRET = "crm-secret-value-123"
INLINE = "inline-mkt-secret-456"


class FakeCrm(Connector):
    kind = "crm"
    capabilities = frozenset({Capability.READ_RECORDS, Capability.PARSE_WEBHOOKS,
                              Capability.WRITE_CONSENTS, Capability.READ_GROUPS})
    options = (
        Option("base_url", str, "https://crm.example", "API base URL."),
        Option("client_secret", Secret, REQUIRED, "OAuth client secret."),
        Option("token", Secret, None, "A fixed token."),
        Option("mode", str, "a", "Auth mode.", choices=("a", "b")),
        Option("timeout", float, 30.0, "Seconds.", minimum=0.1),
        Option("email_fields", list, ["Email"], "E-mail field paths.", item_type=str),
    )

    @classmethod
    def validate(cls, name, config):
        if config["mode"] == "b" and config["token"] is None:
            return ['token: is required with mode = "b" (fix: add token = { env = "X" })']
        if config["base_url"] == "https://leak.example":
            return [f"client_secret: {config['client_secret'].reveal()} is rejected"]
        if config["base_url"] == "https://crash.example":
            raise RuntimeError("boom")
        return []

    def read_page(self, cursor, page_size, since=None): ...

    def read_records(self, events): ...

    def write_consents(self, record_id, labels): ...

    def read_group(self, name): ...

    @classmethod
    def webhook_parser(cls, name, config): ...


class FakeMarketing(Connector):
    kind = "mkt"
    capabilities = frozenset({Capability.WRITE_PROFILES, Capability.READ_CONSENT_CHANGES})
    options = (
        Option("section", str, REQUIRED, "The section."),
        Option("client_secret", Secret, REQUIRED, "API secret."),
        Option("keyspace", str, "email", "Keyspace."),
        Option("concurrency", int, 4, "Requests in flight.", minimum=1, maximum=64),
    )

    def write_profiles(self, profiles, known): ...

    def read_consent_changes(self, cursor): ...


VALID = """
[daemon]
state_dir = "state"

[connections.crm]
kind = "crm"
client_secret = { env = "CRM_SECRET" }

[connections.mkt]
kind = "mkt"
section = "main"
client_secret = "inline-mkt-secret-456"

[integrations.crm-mkt]
source = "crm"
destination = "mkt"

[integrations.crm-mkt.conditions]
"Contact.Type" = "A"

[integrations.crm-mkt.fields]
"Contact.Organization.Name" = "company"

[integrations.crm-mkt.selections]
"Readers" = "reader"

[[integrations.crm-mkt.consents]]
label = "News"
topic = "news"
channel = "email"
"""


