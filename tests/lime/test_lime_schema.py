"""Lime preflight (``check_schema``) against the emulator's limetype API: every mapped
property and relation, the consent add-on, consent type titles and groups."""

from __future__ import annotations

import pytest
from syncd_lime.connector import LimeConnector
from syncd_lime.emulator import LimeEmulator

from syncd.plugin import Need, NeedKind, SchemaNeeds
from tests.lime.conftest import lime_config

FIELDS = ("firstname", "lastname", "company.name")


def needs(fields=FIELDS, labels=("Newsletter",), groups=()) -> SchemaNeeds:
    items = [Need(NeedKind.FIELD, f, f'integrations.x.fields."{f}"') for f in fields]
    items += [Need(NeedKind.LABEL, lab, f"integrations.x.consents[{i}].label")
              for i, lab in enumerate(labels)]
    items += [Need(NeedKind.GROUP, g, f"integrations.x.overviews[{i}].name")
              for i, g in enumerate(groups)]
    return SchemaNeeds("source", tuple(items))


@pytest.mark.parametrize("shape", ["dict", "list"])
def test_the_sandbox_config_passes(emulator, make_connector, shape):
    emulator.limetype_shape = shape
    connector = make_connector(groups={"Key": "customertype=A&min-_timestamp=2020-01-01"})
    assert connector.check_schema(needs(groups=("Key",))) == []


def test_wrong_names_are_named_with_their_keys_and_a_did_you_mean(make_connector):
    connector = make_connector(email_property="e_mail")
    problems = {p.key: p for p in connector.check_schema(
        needs(fields=("firstnme", "company.nme", "company.name")))}
    assert problems['integrations.x.fields."firstnme"'].suggestion == "firstname"
    assert problems['integrations.x.fields."company.nme"'].suggestion == "company.name"
    assert problems["connections.crm.email_property"].suggestion == "email"
    assert 'integrations.x.fields."company.name"' not in problems


def test_a_wrong_relation_and_consent_names(make_connector):
    connector = make_connector(company_relation="companyy", consent_approved_property="aproved",
                               consent_type_relation="consenttype")
    problems = {p.key: p for p in connector.check_schema(
        needs(fields=("companyy.name",), labels=("Newsletter", "Newsleter")))}
    assert problems["connections.crm.company_relation"].suggestion == "company"
    assert problems["connections.crm.consent_approved_property"].suggestion == "approved"
    assert problems["integrations.x.consents[1].label"].suggestion == "Newsletter"
    assert "integrations.x.consents[0].label" not in problems


def test_missing_consent_addon_is_said_clearly():
    with LimeEmulator(consent_addon=False) as emu:
        connector = LimeConnector("crm", lime_config(emu))
        try:
            problems = connector.check_schema(needs())
            assert [p.key for p in problems] == ["connections.crm.consent_limetype",
                                                 "connections.crm.consenttype_limetype"]
            assert "consent add-on" in str(problems[0]) and "not installed" in str(problems[0])
            # without consent mappings the add-on is not needed
            assert connector.check_schema(needs(labels=())) == []
        finally:
            connector.stop()


def test_groups_are_checked_and_run(make_connector):
    connector = make_connector(groups={"Bad": "customertyp=A", "Good": "position=CEO"})
    problems = {p.key: p for p in connector.check_schema(needs(groups=("Good", "Nope")))}
    assert problems['connections.crm.groups.Bad'].suggestion == "customertype"
    assert "Nope" in str(problems["integrations.x.overviews[1].name"])
    assert "connections.crm.groups.Good" not in problems


def test_daily_creation_filter_must_be_taken(emulator, make_connector):
    emulator.system_filters = False  # a server that filters on properties only
    problems = {p.key: p for p in make_connector().check_schema(needs())}
    assert "refuses" in str(problems["connections.crm.changed_since_property"])
    assert make_connector(changed_since_property="lastname").check_schema(needs()) == []
    wrong = make_connector(changed_since_property="_timestmp").check_schema(needs())
    assert [p.suggestion for p in wrong] == ["_timestamp"]
