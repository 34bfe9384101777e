"""APSIS' preflight: the emulator's definitions and the connector's ``check_schema``."""

from __future__ import annotations

import pytest
import requests
from syncd_apsis.connector import ApsisConnector
from syncd_apsis.emulator_definitions import CONSENT_LIST

from syncd.connectors.connector import Capability
from syncd.exceptions import AuthError
from syncd.records import Need, NeedKind, Profile, SchemaNeeds

I = "integrations.demo"  # noqa: E741 - the integration's key prefix
NEWS = "com.apsis1.topics.newsletter"


def needs(*items: tuple[NeedKind, str, str]) -> SchemaNeeds:
    return SchemaNeeds("destination",
                       tuple(Need(kind, name, key) for kind, name, key in items))


def sandbox(**replace: str) -> SchemaNeeds:
    attrs = {"FirstName": "firstname", "LastName": "lastname",
             "Contact.Organization.Name": "company", **replace}
    return needs(
        *[(NeedKind.ATTRIBUTE, ApsisConnector.canonical_attribute(a), f'{I}.fields."{f}"')
          for f, a in attrs.items()],
        (NeedKind.TOPIC, NEWS, f"{I}.consents[0].topic"),
        (NeedKind.CHANNEL, "email", f"{I}.consents[0].channel"),
        (NeedKind.TAG, "events", f"{I}.selections.Events"))


def by_key(problems) -> dict:
    return {p.key: p for p in problems}


def test_the_sandbox_mapping_passes_and_an_undefined_tag_is_only_a_warning(emu, connect):
    assert Capability.CHECK_SCHEMA in ApsisConnector.capabilities
    problems = connect(emu).check_schema(sandbox())
    assert [(p.key, p.severity) for p in problems] == [(f"{I}.selections.Events", "warning")]
    conn = connect(emu)  # once a write defined the tag, nothing is left
    [result] = conn.write_profiles([Profile("k1", "k1@example.org", tags={"events": True})],
                                   set())
    assert result.outcome == "created"
    assert conn.check_schema(sandbox()) == []


def test_a_mapped_attribute_the_section_lacks_is_named_with_a_suggestion(emu, connect):
    problems = by_key(connect(emu).check_schema(
        sandbox(**{"Contact.Organization.Name": "companyname", "X": "com.example.custom"})))
    problem = problems[f'{I}.fields."Contact.Organization.Name"']
    assert problem.suggestion == "company"
    assert "company" in problem.have and "firstname" in problem.have
    assert "has no attribute 'companyname'" in problem.message
    assert problems[f'{I}.fields."X"'].suggestion is None
    assert problems[f'{I}.fields."X"'].fix == "create the attribute in APSIS One"


def test_section_and_keyspace_are_checked(make_emulator, connect):
    emu = make_emulator()
    problems = by_key(connect(emu, section="com.apsis1.sections.defalt",
                              keyspace="com.apsis1.keyspaces.crmid").check_schema(sandbox()))
    assert set(problems) == {"connections.apsis.section", "connections.apsis.keyspace"}
    assert problems["connections.apsis.section"].suggestion == "com.apsis1.sections.default"
    assert problems["connections.apsis.keyspace"].suggestion == "com.apsis1.keyspaces.crm-id"


def test_topics_and_channels_are_checked(emu, connect):
    conn = connect(emu, email_channel="com.apsis1.channels.e-mail")
    problems = by_key(conn.check_schema(needs(
        (NeedKind.TOPIC, "com.apsis1.topics.newsleter", f"{I}.consents[0].topic"),
        (NeedKind.CHANNEL, "email", f"{I}.consents[0].channel"))))
    assert problems[f"{I}.consents[0].topic"].suggestion == NEWS
    assert problems["connections.apsis.email_channel"].suggestion == \
        "com.apsis1.channels.email"


@pytest.mark.parametrize("consent_v2", [True, False])
def test_topics_come_from_consent_lists_when_the_account_has_no_consent_2(
        make_emulator, connect, consent_v2):
    emu = make_emulator(consent_v2=consent_v2)
    problems = connect(emu).check_schema(needs(
        (NeedKind.TOPIC, NEWS, f"{I}.consents[0].topic"),
        (NeedKind.TOPIC, "com.apsis1.topics.nope", f"{I}.consents[1].topic")))
    keys = [p.key for p in problems]
    assert f"{I}.consents[1].topic" in keys  # the unknown topic, either way
    v2_problem = [p for p in problems if "consent 2.0" in p.message]
    assert bool(v2_problem) is (not consent_v2)


@pytest.mark.parametrize("consent_v2", [True, False])
def test_the_emulator_serves_consent_lists_and_v2_topics_by_its_switch(make_emulator, consent_v2):
    emu = make_emulator(consent_v2=consent_v2)
    token = requests.post(f"{emu.url}/oauth/token", json={
        "grant_type": "client_credentials", "client_id": emu.client_id,
        "client_secret": emu.client_secret}, timeout=10).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    base = f"{emu.url}/audience/sections/{emu.section}"
    lists = requests.get(f"{base}/consent-lists", headers=headers, timeout=10).json()["items"]
    assert [x["discriminator"] for x in lists] == [CONSENT_LIST]
    listed = requests.get(f"{base}/consent-lists/{CONSENT_LIST}/topics", headers=headers,
                          timeout=10).json()["items"]
    assert NEWS in {t["discriminator"] for t in listed}
    v2 = requests.get(f"{emu.url}/v2/audience/sections/{emu.section}/topics", headers=headers,
                      timeout=10)
    assert v2.status_code == (200 if consent_v2 else 404)


def test_refused_credentials_are_raised_not_reported_as_config_problems(emu, connect):
    conn = connect(emu, client_secret="wrong", max_attempts=1)
    with pytest.raises(AuthError):
        conn.check_schema(sandbox())
