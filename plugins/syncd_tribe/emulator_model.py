"""The Tribe emulator's data model: entity sets, their fields and navigations (apis.md 1.2,
1.4), and ``$metadata`` derived from it. The person-label link set and navigations are a GAP
(apis.md 1.4): see :mod:`syncd_tribe.emulator_store` and the emulator's ``label_navs``."""

from __future__ import annotations

from typing import Any

from syncd_tribe.emulator_metadata import csdl

#: Concrete entity sets: ``_Type`` and navigations ``name -> (target set, collection?)``.
#: A target may be an abstract set (``Relation``): any entity of its concrete sets.
LABELS_NAV = "Labels"
LABEL_LINKS_NAV = "LabelAssignments"
LABEL_LINK_SET = "LabelAssignment"
#: The sets that carry labels.
LABELLED = frozenset({"Relation_Person", "Relation_Organization"})
_LABEL_NAVS = {LABELS_NAV: ("Label", True), LABEL_LINKS_NAV: (LABEL_LINK_SET, True)}
#: Relationship manager (one employee) and owners (several) of seed 002, chapter 5: the
#: ``AccountManager`` navigation is seen on commercial relationships [CODE]; on persons and
#: contacts, and the owners' name, apis.md 1.4 says [INFER]/[GAP]. The ms365 link's
#: ``manager_nav``/``owners_nav`` options name them.
_MANAGER_NAVS = {"AccountManager": ("Relationship_Person_Contact_Employee", False),
                 "Owners": ("Relationship_Person_Contact_Employee", True)}
SETS: dict[str, tuple[str, dict[str, tuple[str, bool]]]] = {
    "Relation_Person": ("Relation.Person", {**_LABEL_NAVS, **_MANAGER_NAVS}),
    "Relation_Organization": ("Relation.Organization", dict(_LABEL_NAVS)),
    "Relationship_Person_Contact_Standard": ("Relationship.Person.Contact.Standard", {
        "Person": ("Relation_Person", False), "Relation": ("Relation", False),
        **_MANAGER_NAVS}),
    "Relationship_Person_Contact_Employee": ("Relationship.Person.Contact.Employee", {
        "Person": ("Relation_Person", False), "Relation": ("Relation", False)}),
    "Relationship_Organization_Identity": ("Relationship.Organization.Identity", {
        "Relation": ("Relation_Organization", False)}),
    "Activity_Task": ("Activity.Task", {
        "Assignee": ("Relationship_Person_Contact_Employee", False),
        "Relationship": ("Relationship", False)}),
    # apis.md 1.2 names the set; its fields are a GAP: those of a task, and a Relation nav
    "Activity_Event": ("Activity.Event", {
        "Relationship": ("Relationship", False), "Relation": ("Relation", False)}),
    "Label": ("Label", {}),
    # GAP: the real entity set of person/organisation <-> label links is not documented.
    LABEL_LINK_SET: (LABEL_LINK_SET, {"Relation": ("Relation", False), "Label": ("Label", False)}),
}

#: A custom field as Tribe names them (``_<uuid with - as __>``): a lead score 0..100.
SCORE_FIELD = "_3f5e1a2b__9c4d__4e8f__a1b2__c3d4e5f6a7b8"
#: The fields each new entity of a set has (null until set), besides the standard ones.
#: ``$metadata`` lists exactly these: the seed and the API write no others.
FIELDS: dict[str, tuple[str, ...]] = {
    "Relation_Person": ("FirstName", "MiddleName", "LastName", "Initials", "Title", "Suffix",
                        "EmailAddress", "PhoneNumber", "MobilePhoneNumber", "BirthDate",
                        SCORE_FIELD),
    "Relation_Organization": ("Name", "EmailAddress", "PhoneNumber", "Website"),
    "Relationship_Person_Contact_Standard": ("EmailAddress", "PhoneNumber",
                                             "MobilePhoneNumber", "Department", "Role",
                                             "IsFormer", "CustomerType"),
    "Relationship_Person_Contact_Employee": ("EmailAddress", "PhoneNumber", "Department",
                                             "Role"),
    "Relationship_Organization_Identity": ("Name",),
    "Activity_Task": ("Subject", "Description", "StartDate", "EndDate"),
    "Activity_Event": ("Subject", "Description", "StartDate", "EndDate"),
    "Label": ("Name",),
    LABEL_LINK_SET: (),
}

#: Fields and navigations an activity must be created with (400 otherwise): what the
#: vendor's own client always sends (apis.md 1.6 [CODE]); ``*_REQUIRED`` of the emulator.
ACTIVITY_REQUIRED: dict[str, tuple[str, ...]] = {
    "Activity_Task": ("Subject", "StartDate", "Assignee", "Relationship"),
    "Activity_Event": ("Subject", "StartDate"),
}

#: Where an inline-created entity of an abstract navigation target goes.
INLINE_TARGET = {"Relation": "Relation_Organization",
                 "Relationship": "Relationship_Person_Contact_Standard"}
#: Sets that cannot be deleted through the API (the docs say so of employees).
UNDELETABLE = frozenset({"Relationship_Person_Contact_Employee"})
READ_ONLY = frozenset({"_Type", "_Name", "CreationDate", "LastMutationDate", "SortIndex"})
STANDARD = ("ID", "_Type", "_Name", "SortIndex", "CreationDate", "LastMutationDate", "ImportId")


def concrete_sets(name: str) -> list[str]:
    """The concrete sets behind ``name`` (itself, or the sets of an abstract set)."""
    if name in SETS:
        return [name]
    found = [s for s in SETS if s.startswith(name + "_")]
    if not found:
        raise KeyError(name)
    return found


def metadata(model: dict | None = None, fields: dict | None = None) -> str:
    """``$metadata``: the CSDL XML of this model (:mod:`syncd_tribe.emulator_metadata`)."""
    fields = fields or FIELDS
    former = set(fields["Relation_Person"]) - set(FIELDS["Relation_Person"])
    return csdl(model or SETS, fields, STANDARD,
                {SCORE_FIELD: "Edm.Int32", **dict.fromkeys(former, "Edm.Boolean")})


#: The person's "Former" flag by default (its API name is a GAP, apis.md 1.4: the emulator's
#: ``person_former_field`` switch); contacts have ``IsFormer`` in :data:`FIELDS`.
PERSON_FORMER = "IsFormer"


def account_fields(person_former: str | None) -> dict[str, tuple[str, ...]]:
    """:data:`FIELDS` with the person's former flag named ``person_former`` (None: none)."""
    if not person_former:
        return FIELDS
    return {**FIELDS, "Relation_Person": (*FIELDS["Relation_Person"], person_former)}


def sort_key(value: Any) -> tuple:
    """How ``$orderby`` sorts a value: nulls first, text case-insensitively."""
    if value is None:
        return (0, "")
    if isinstance(value, str):
        return (1, value.casefold())
    return (1, value)
