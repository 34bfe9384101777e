"""Fake connectors, a hand-built registry and a config-file helper for the config tests."""

from __future__ import annotations

import textwrap

import pytest

from syncd.config.schema import REQUIRED, Option, Secret
from syncd.connector import Capability, Connector
from syncd.exceptions import ConfigErrors
from syncd.plugins import PluginStatus, Registry

SECRET = "crm-secret-value-123"
INLINE = "inline-mkt-secret-456"


class FakeCrm(Connector):
    kind = "crm"
    capabilities = frozenset({Capability.READ_RECORDS, Capability.PARSE_WEBHOOKS})
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

    @classmethod
    def webhook_parser(cls, name, config): ...


class FakeMarketing(Connector):
    kind = "mkt"
    capabilities = frozenset({Capability.WRITE_PROFILES})
    options = (
        Option("section", str, REQUIRED, "The section."),
        Option("client_secret", Secret, REQUIRED, "API secret."),
        Option("keyspace", str, "email", "Keyspace."),
        Option("concurrency", int, 4, "Requests in flight.", minimum=1, maximum=64),
    )

    def write_profiles(self, profiles, known): ...


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


@pytest.fixture
def registry() -> Registry:
    return Registry(
        connectors={"crm": FakeCrm, "mkt": FakeMarketing},
        plugins=[PluginStatus(name="lime", module="syncd_lime", status="failed",
                              reason="import failed: ModuleNotFoundError: No module named 'x'")],
    )


@pytest.fixture
def environ() -> dict[str, str]:
    return {"CRM_SECRET": SECRET}


class Files:
    def __init__(self, tmp_path, registry, environ):
        self.tmp_path, self.registry, self.environ = tmp_path, registry, environ

    def write(self, text: str, name: str = "syncd.toml") -> str:
        path = self.tmp_path / name
        path.write_text(textwrap.dedent(text))
        return str(path)

    def load(self, text: str):
        from syncd.config import load

        return load(self.write(text), self.registry, environ=self.environ)

    def errors(self, text: str):
        """The ConfigErrors of ``text`` (fails the test if it loads)."""
        from syncd.config import load

        with pytest.raises(ConfigErrors) as info:
            load(self.write(text), self.registry, environ=self.environ)
        assert info.value.errors, "ConfigErrors without errors"
        return info.value.errors

    def error(self, text: str, key: str):
        """The one error of ``text`` about ``key``."""
        errors = self.errors(text)
        found = [e for e in errors if e.key == key]
        assert len(found) == 1, f"no single error for {key}: {[str(e) for e in errors]}"
        return found[0]


@pytest.fixture
def files(tmp_path, registry, environ) -> Files:
    return Files(tmp_path, registry, environ)
