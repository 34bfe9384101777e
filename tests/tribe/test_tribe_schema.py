"""Tribe's preflight: the emulator's ``$metadata`` (CSDL XML derived from what it serves) and
the connector's ``check_schema`` against it."""

from __future__ import annotations

import pytest
from syncd_tribe import schema
from syncd_tribe.connector import TribeConnector
from syncd_tribe.emulator import TribeEmulator
from syncd_tribe.emulator_store import FIELDS, SETS, STANDARD

from syncd.connectors.connector import Capability
from syncd.exceptions import AuthError
from syncd.records import Need, NeedKind, SchemaNeeds

I = "integrations.demo"  # noqa: E741 - the integration's key prefix


def needs(*items: tuple[NeedKind, str, str]) -> SchemaNeeds:
    return SchemaNeeds("source", tuple(Need(kind, name, key) for kind, name, key in items))


SANDBOX = needs(
    (NeedKind.FIELD, "Contact.CustomerType", f'{I}.conditions."Contact.CustomerType"'),
    (NeedKind.FIELD, "FirstName", f"{I}.fields.FirstName"),
    (NeedKind.FIELD, "Contact.Organization.Name", f'{I}.fields."Contact.Organization.Name"'),
    (NeedKind.LABEL, "Newsletter", f"{I}.consents[0].label"),
    (NeedKind.LABEL, "Events", f"{I}.selections.Events"),
)


def by_key(problems) -> dict:
    return {p.key: p for p in problems}


def test_metadata_is_csdl_xml_of_exactly_what_the_emulator_serves(emulator):
    session = emulator.api_session()
    response = session.get(f"{emulator.url}/v1/odata/$metadata", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/xml")
    meta = schema.parse(response.content)
    assert set(SETS) <= set(meta.sets)
    for set_name in meta.sets:  # every set it lists is served, abstract ones included
        answer = session.get(f"{emulator.url}/v1/odata/{set_name}", params={"$top": "0"},
                             timeout=10)
        assert answer.status_code == 200, set_name
    assert session.get(f"{emulator.url}/v1/odata/Relation_Persons", timeout=10
                       ).status_code == 404
    for set_name, (_, navs) in SETS.items():
        etype = meta.sets[set_name]
        assert meta.properties(etype) >= set(STANDARD) | set(FIELDS[set_name])
        assert set(navs) <= set(meta.navigations(etype))
        # every field an entity really has (seeded, through the API) is in $metadata
        served = session.get(f"{emulator.url}/v1/odata/{set_name}", timeout=10).json()["value"]
        for entity in served:
            assert set(entity) - {k for k in entity if k.startswith("@")} <= \
                meta.properties(etype), set_name


def test_the_sandbox_rules_pass(connector):
    assert Capability.CHECK_SCHEMA in TribeConnector.capabilities
    assert connector.check_schema(SANDBOX) == []


def test_labels_straight_to_the_labels_pass(make_connector):
    connector = make_connector(labels_nav="Labels", label_link_label_nav="")
    assert connector.check_schema(SANDBOX) == []


def test_wrong_field_paths_are_named_with_their_keys_and_a_suggestion(connector):
    problems = by_key(connector.check_schema(needs(
        (NeedKind.FIELD, "Contact.Organization.Nam", f'{I}.fields."Contact.Organization.Nam"'),
        (NeedKind.FIELD, "FirstNme", f"{I}.fields.FirstNme"),
        (NeedKind.FIELD, "Contact.CustomerTyp", f'{I}.conditions."Contact.CustomerTyp"'),
        (NeedKind.FIELD, "Contact.Organisation.Name",
         f'{I}.fields."Contact.Organisation.Name"'),
    )))
    assert set(problems) == {f'{I}.fields."Contact.Organization.Nam"', f"{I}.fields.FirstNme",
                             f'{I}.conditions."Contact.CustomerTyp"',
                             f'{I}.fields."Contact.Organisation.Name"'}
    assert problems[f'{I}.fields."Contact.Organization.Nam"'].suggestion == \
        "Contact.Organization.Name"
    assert problems[f"{I}.fields.FirstNme"].suggestion == "FirstName"
    assert problems[f'{I}.conditions."Contact.CustomerTyp"'].suggestion == \
        "Contact.CustomerType"
    assert problems[f'{I}.fields."Contact.Organisation.Name"'].suggestion == \
        "Contact.Organization.Name"
    text = str(problems[f"{I}.fields.FirstNme"])
    assert "did you mean \"FirstName\"?" in text and "the account has: FirstName" in text


def test_email_fields_and_former_field_are_checked(make_connector):
    connector = make_connector(email_fields=["Contact.EmailAdress", "EmailAddress"],
                               former_field="Former")
    problems = by_key(connector.check_schema(SchemaNeeds("source")))
    assert problems["connections.crm.email_fields[0]"].suggestion == "Contact.EmailAddress"
    assert problems["connections.crm.former_field"].suggestion == "IsFormer"
    assert len(problems) == 2


def test_a_wrong_label_navigation_is_named_when_labels_are_used(make_connector):
    connector = make_connector(labels_nav="LabelAssignment")
    problem = by_key(connector.check_schema(SANDBOX))["connections.crm.labels_nav"]
    assert problem.suggestion == "LabelAssignments"
    assert set(problem.have) == {"LabelAssignments", "Labels"}
    # nothing uses labels: the navigation is not needed, so not a problem
    assert connector.check_schema(needs((NeedKind.FIELD, "FirstName", f"{I}.fields.x"))) == []


def test_label_link_options_and_label_names_are_checked(make_connector):
    connector = make_connector(label_link_label_nav="Labl", label_link_time_field="Created",
                               label_link_set="LabelAssignmnt")
    problems = by_key(connector.check_schema(needs(
        (NeedKind.LABEL, "Newsleter", f"{I}.consents[0].label"))))
    assert problems["connections.crm.label_link_label_nav"].suggestion == "Label"
    assert problems["connections.crm.label_link_time_field"].suggestion == "CreationDate"
    assert problems["connections.crm.label_link_set"].suggestion == "LabelAssignment"
    assert problems[f"{I}.consents[0].label"].suggestion == "Newsletter"
    assert "Newsletter" in problems[f"{I}.consents[0].label"].have


def test_groups_are_checked_and_overviews_must_name_one(make_connector):
    connector = make_connector(groups={"Jansens": "LastName eq 'Jansen'",
                                       "Typo": "LastNam eq 'Jansen'",
                                       "In": "LastName in ('a', 'b')",
                                       "Nav": "Labelz/Name eq 'x'"})
    problems = by_key(connector.check_schema(needs(
        (NeedKind.GROUP, "Jansens", f"{I}.overviews[0].name"),
        (NeedKind.GROUP, "Jansen", f"{I}.overviews[1].name"))))
    assert set(problems) == {"connections.crm.groups.Typo", "connections.crm.groups.In",
                             "connections.crm.groups.Nav", f"{I}.overviews[1].name"}
    assert problems["connections.crm.groups.Typo"].suggestion == "LastName"
    assert "'in' is not supported" in problems["connections.crm.groups.In"].message
    assert problems["connections.crm.groups.Nav"].suggestion == "Labels"
    assert problems[f"{I}.overviews[1].name"].suggestion == "Jansens"


def test_a_refused_token_is_raised_not_reported_as_a_config_problem(make_connector):
    connector = make_connector(client_secret="wrong", max_attempts=1)
    with pytest.raises(AuthError):
        connector.check_schema(SANDBOX)


def test_parse_reads_inheritance_and_collections():
    meta = schema.parse(b"""<?xml version="1.0"?>
<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">
 <edmx:DataServices><Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="X">
  <EntityType Name="Base" Abstract="true"><Property Name="ID" Type="Edm.Guid"/></EntityType>
  <EntityType Name="Person" BaseType="X.Base"><Property Name="Name" Type="Edm.String"/>
   <NavigationProperty Name="Tags" Type="Collection(X.Tag)"/></EntityType>
  <EntityType Name="Tag"><Property Name="Label" Type="Edm.String"/></EntityType>
  <EntityContainer Name="C"><EntitySet Name="People" EntityType="X.Person"/></EntityContainer>
 </Schema></edmx:DataServices></edmx:Edmx>""")
    assert meta.sets == {"People": "Person"}
    assert meta.properties("Person") == {"ID", "Name"}
    assert meta.properties("Base") == {"ID", "Name"}  # reached through a base-typed nav
    assert meta.navigations("Person") == {"Tags": ("Tag", True)}


@pytest.mark.parametrize("label_navs", [("Labels",), ("LabelAssignments",), ()])
def test_labels_nav_against_each_label_navigation_setting(label_navs):
    """An account may have either label navigation, both or neither (the emulator's
    ``label_navs``): $metadata follows it and so does the check."""
    emu = TribeEmulator(seed=1, label_navs=label_navs)
    emu.seed(5, seed=1)
    emu.start()
    try:
        for options in ({}, {"labels_nav": "Labels", "label_link_label_nav": ""}):
            connector = TribeConnector("crm", {**TribeConnector.sandbox_config(emu), **options})
            try:
                problems = by_key(connector.check_schema(SANDBOX))
            finally:
                connector.stop()
            nav = options.get("labels_nav", "LabelAssignments")
            if nav in label_navs:
                assert problems == {}
                continue
            problem = problems["connections.crm.labels_nav"]
            assert set(problem.have) == set(label_navs)
            if label_navs == ("Labels",):
                assert problem.suggestion == "Labels"
                assert 'label_link_label_nav = ""' in str(problem)
            elif label_navs == ("LabelAssignments",):
                assert problem.suggestion == "LabelAssignments"
                assert "set label_link_label_nav to the navigation" in str(problem)
            else:
                assert problem.suggestion is None
    finally:
        emu.stop()
