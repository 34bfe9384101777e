"""diff(): what a reload changes, and which integrations need a full sync."""

from __future__ import annotations

from dataclasses import replace

import pytest

from syncd.config import (
    Condition,
    Config,
    ConnectionConfig,
    ConsentMapping,
    IntegrationConfig,
    ReceiverConfig,
    Secret,
    diff,
)


def make(**integration) -> Config:
    crm = ConnectionConfig("crm", "crm", {"timeout": 30.0, "email_fields": ["Email"],
                                          "client_secret": Secret("a", "env:A")})
    mkt = ConnectionConfig("mkt", "mkt", {"section": "main", "concurrency": 4})
    base = {"name": "crm-mkt", "source": "crm", "destination": "mkt",
                "conditions": (Condition("Type", "A"),), "fields": {"Org.Name": "company"},
                "consents": (ConsentMapping("News", "news", "email"),),
                "selections": {"R": "reader"}}
    base.update(integration)
    return Config(path="/etc/syncd.toml", connections={"crm": crm, "mkt": mkt},
                  integrations={"crm-mkt": IntegrationConfig(**base)})


def with_option(config: Config, connection: str, **options) -> Config:
    conn = config.connections[connection]
    changed = replace(conn, options={**conn.options, **options})
    return replace(config, connections={**config.connections, connection: changed})


def test_no_change_is_an_empty_diff():
    d = diff(make(), make())
    assert not d and d.needs_full_sync == () and d.integrations_changed == ()


@pytest.mark.parametrize("change,reason", [
    ({"fields": {"Org.Name": "company", "FirstName": "firstname"}}, "fields changed"),
    ({"fields": {"Org.Name": "organisation"}}, "fields changed"),
    ({"consents": (ConsentMapping("News", "news", "sms"),)}, "consents changed"),
    ({"consents": ()}, "consents changed"),
])
def test_mapping_change_needs_full_sync(change, reason):
    d = diff(make(), make(**change))
    assert d.integrations_changed == ("crm-mkt",)
    assert d.needs_full_sync == ("crm-mkt",)
    assert reason in d.full_sync["crm-mkt"]


@pytest.mark.parametrize("change", [
    {"conditions": (Condition("Type", "B"),)},
    {"conditions": ()},
    {"selections": {"R": "readers"}},
    {"page_size": 50},
    {"enabled": False},
    {"delete_unmatched": True},
])
def test_other_changes_need_no_full_sync(change):
    d = diff(make(), make(**change))
    assert d.integrations_changed == ("crm-mkt",)
    assert d.needs_full_sync == () and d.full_sync == {}
    assert d.integrations_affected == ("crm-mkt",)


def test_source_connection_data_option_needs_full_sync():
    old = make()
    d = diff(old, with_option(old, "crm", email_fields=["Email", "Contact.Email"]))
    assert d.connections_changed == ("crm",)
    assert d.integrations_changed == () and d.integrations_via_connections == ("crm-mkt",)
    assert d.needs_full_sync == ("crm-mkt",)
    assert any("email_fields" in r for r in d.full_sync["crm-mkt"])


@pytest.mark.parametrize("connection,options", [
    ("crm", {"timeout": 5.0}),
    ("crm", {"client_secret": Secret("b", "env:A")}),
    ("mkt", {"concurrency": 8}),
])
def test_transport_or_credential_change_restarts_the_connection_without_full_sync(
        connection, options):
    old = make()
    d = diff(old, with_option(old, connection, **options))
    assert d.connections_changed == (connection,)
    assert d.needs_full_sync == ()
    assert d.integrations_affected == ("crm-mkt",)


def test_connector_can_name_more_transport_options():
    class Cls:
        transport_options = ("email_fields",)

    class Registry:
        def connector(self, kind):
            return Cls

    old = make()
    new = with_option(old, "crm", email_fields=["X"])
    assert diff(old, new).needs_full_sync == ("crm-mkt",)
    assert diff(old, new, Registry()).needs_full_sync == ()


def test_changed_source_or_destination_needs_full_sync():
    old = make()
    other = ConnectionConfig("mkt2", "mkt", {"section": "other"})
    new = replace(make(destination="mkt2"), connections={**old.connections, "mkt2": other})
    d = diff(old, new)
    assert d.connections_added == ("mkt2",)
    assert "destination changed" in d.full_sync["crm-mkt"]


def test_added_and_removed():
    old = make()
    extra = IntegrationConfig(name="second", source="crm", destination="mkt")
    new = replace(old, integrations={"second": extra},
                  connections={"crm": old.connections["crm"]})
    d = diff(old, new)
    assert d.integrations_added == ("second",) and d.integrations_removed == ("crm-mkt",)
    assert d.connections_removed == ("mkt",)
    assert d.needs_full_sync == ()
    assert "crm-mkt" in d.integrations_affected


def test_core_sections():
    old = make()
    d = diff(old, replace(old, receiver=ReceiverConfig(port=9000)))
    assert d.receiver_changed and d.restart_listeners and not d.daemon_changed
    assert not d.admin_changed and d.connections_changed == ()
    d = diff(old, replace(old, daemon=replace(old.daemon, log_level="debug")))
    assert d.daemon_changed and not d.restart_listeners and bool(d)
