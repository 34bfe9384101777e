"""The core of the preflight: what integrations need from each connection (with the config
keys that name it), and the report (problems per integration, connection errors apart)."""

from __future__ import annotations

from syncd.config.model import (
    Condition,
    Config,
    ConnectionConfig,
    ConsentMapping,
    IntegrationConfig,
    Overview,
)
from syncd.config.schema import Secret
from syncd.connectors.connector import Capability
from syncd.engine import preflight
from syncd.exceptions import AuthError
from syncd.records import NeedKind, SchemaProblem
from syncd.testing import MemoryConnector, memory_registry

SECRET = "preflight-s3cret-value"


class CheckedMemory(MemoryConnector):
    kind = "checked"
    capabilities = MemoryConnector.capabilities | {Capability.CHECK_SCHEMA}

    def check_schema(self, needs):
        return []

    @classmethod
    def canonical_attribute(cls, name: str) -> str:
        return name if "." in name else f"attr.{name}"


def registry():
    reg = memory_registry()
    reg.connectors["checked"] = CheckedMemory
    return reg


def config(**integration) -> Config:
    conns = {
        "crm": ConnectionConfig("crm", "checked", {"world": "w", "webhook_secret": Secret(SECRET)}),
        "mkt": ConnectionConfig("mkt", "checked", {"world": "w"}),
        "idle": ConnectionConfig("idle", "memory", {"world": "w"}),
    }
    base = {
        "name": "crm-mkt", "source": "crm", "destination": "mkt",
        "conditions": (Condition("Contact.Type", "A"),),
        "fields": {"Contact.Organization.Name": "company", "FirstName": "x.first"},
        "consents": (ConsentMapping("Newsletter", "topic.news", "email"),),
        "selections": {"VIP list": "vip"},
        "overviews": (Overview("Jansens", "jansen"),)}
    base.update(integration)
    return Config(path="/x.toml", connections=conns,
                  integrations={"crm-mkt": IntegrationConfig(**base)})


def test_needs_name_each_item_with_its_config_key():
    needs = preflight.needs(config(), registry())
    src = {(n.kind, n.name, n.key) for n in needs["crm"].items}
    assert src == {
        (NeedKind.FIELD, "Contact.Type", 'integrations.crm-mkt.conditions."Contact.Type"'),
        (NeedKind.FIELD, "Contact.Organization.Name",
         'integrations.crm-mkt.fields."Contact.Organization.Name"'),
        (NeedKind.FIELD, "FirstName", "integrations.crm-mkt.fields.FirstName"),
        (NeedKind.LABEL, "Newsletter", "integrations.crm-mkt.consents[0].label"),
        (NeedKind.LABEL, "VIP list", 'integrations.crm-mkt.selections."VIP list"'),
        (NeedKind.GROUP, "Jansens", "integrations.crm-mkt.overviews[0].name"),
    }
    dst = {(n.kind, n.name, n.key) for n in needs["mkt"].items}
    assert dst == {
        (NeedKind.ATTRIBUTE, "attr.company",
         'integrations.crm-mkt.fields."Contact.Organization.Name"'),
        (NeedKind.ATTRIBUTE, "x.first", "integrations.crm-mkt.fields.FirstName"),
        (NeedKind.TOPIC, "topic.news", "integrations.crm-mkt.consents[0].topic"),
        (NeedKind.CHANNEL, "email", "integrations.crm-mkt.consents[0].channel"),
        (NeedKind.TAG, "vip", 'integrations.crm-mkt.selections."VIP list"'),
        (NeedKind.TAG, "jansen", "integrations.crm-mkt.overviews[0].tag"),
    }
    assert (needs["crm"].role, needs["mkt"].role, needs["idle"].role) == \
        ("source", "destination", "none")
    assert needs["idle"].items == ()


def test_a_disabled_integration_needs_nothing():
    needs = preflight.needs(config(enabled=False), registry())
    assert needs["crm"].items == () and needs["mkt"].items == ()


def test_problems_are_told_apart_from_connection_errors_and_secrets_are_scrubbed():
    cfg = config()

    def check(name, needs):
        if name == "crm":
            raise AuthError(f"token request failed with 401: bad secret {SECRET}", status=401)
        return [SchemaProblem('integrations.crm-mkt.fields."Contact.Organization.Name"',
                              f"no attribute company ({SECRET})", have=("companyname",),
                              suggestion="companyname"),
                SchemaProblem("connections.mkt.section", "no such section"),
                SchemaProblem("integrations.crm-mkt.selections.x", "no tag yet",
                              severity="warning"),
                SchemaProblem("integrations.other.fields.x", "elsewhere")]

    report = preflight.run(cfg, registry(), check)
    assert report.unchecked == ("idle",)  # its connector cannot check
    assert set(report.connection_errors) == {"crm"}
    assert not report.ok
    everything = "\n".join([*map(str, report.problems), *report.connection_lines()])
    assert SECRET not in everything
    assert "connection error, not a config problem" in report.connection_lines()[0]
    integration = cfg.integrations["crm-mkt"]
    mine = report.for_integration(integration)
    assert mine["state"] == "connection_error"
    assert len(mine["problems"]) == 2 and len(mine["warnings"]) == 1
    assert mine["connection_errors"][0].startswith("connections.crm: ")
    blocking = [p.key for p in report.blocking(integration)]
    assert blocking == ['integrations.crm-mkt.fields."Contact.Organization.Name"',
                        "connections.mkt.section"]
    assert 'did you mean "companyname"?' in mine["problems"][0]


def test_a_clean_account_is_ok():
    report = preflight.run(config(), registry(), lambda name, needs: [])
    assert report.ok and report.problems == ()
    assert report.for_integration(config().integrations["crm-mkt"])["state"] == "ok"


def test_missing_suggests_the_closest_and_lists_it_first():
    problem = preflight.missing("k", "no such thing", "compnay",
                                ["city", "company", "country"], fix="create it")
    assert problem.suggestion == "company"
    assert problem.have[0] == "company"
    assert problem.fix is None  # a suggestion is the fix
    none = preflight.missing("k", "no such thing", "zzz", ["city"], fix="create it")
    assert none.suggestion is None and none.fix == "create it"
