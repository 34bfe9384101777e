"""Tribe relationships as the per-user Outlook link (seed 002) sees them: who an employee is
relationship manager or owner of, their fields by neutral name, and writes back.

A relationship is a contact (``contact_set``: a person at an organisation; business e-mail,
phone, mobile and function are the contact's) or a private person (``person_set``; private
e-mail, phone and mobile are the person's). Names apis.md marks [INFER]/[GAP] are options
(:data:`NAMES`, given by the link's connection): the manager and owners navigations, the
former flag, the function field and the employee's e-mail field.

Requests (apis.md 1.3 - 1.5): ``GET /v1/odata/{set}?$expand=…&$orderby=ID&$top&$skip`` for
the relationships, ``GET {set}(id)`` for one, ``PUT {set}(id)`` with the changed fields only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from syncd_tribe.client import TribeClient, any_of, literal

NAMES = {"manager_nav": "AccountManager", "owners_nav": "Owners", "former_field": "IsFormer",
         "function_field": "Role", "employee_email_field": "EmailAddress"}
PERSON = {"Initials": "initials", "FirstName": "givenName", "MiddleName": "middleName",
          "LastName": "surname", "BirthDate": "birthday"}
#: The neutral fields Outlook may change in Tribe, per kind (seed 002, chapter 2).
BACK = {"contact": ("initials", "givenName", "middleName", "surname", "birthday", "email",
                    "jobTitle", "workPhone", "mobile"),
        "private": ("initials", "givenName", "middleName", "surname", "birthday", "email",
                    "mobile", "homePhone")}


@dataclass
class Relationship:
    key: str  # the contact's id, or the private person's
    kind: str  # "contact" | "private"
    person_id: str
    fields: dict[str, Any]
    manager: str | None = None
    owners: tuple[str, ...] = ()
    former: bool = False
    modified_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def sees(self, employee: str) -> bool:
        """Seed 002: synced for its relationship manager and its owners, unless former."""
        return not self.former and (self.manager == employee or employee in self.owners)


class TribePeople:
    def __init__(self, client: TribeClient, person_set: str, contact_set: str,
                 names: dict[str, str] | None = None):
        self.client = client
        self.person_set, self.contact_set = person_set, contact_set
        self.names = {**NAMES, **(names or {})}

    def _expand(self, person: bool) -> str:
        n = self.names
        navs = f"{n['manager_nav']}($select=ID),{n['owners_nav']}($select=ID)"
        return navs if person else f"Person,{navs}"

    def employee(self, email: str) -> str | None:
        """The employee id of the Tribe user with this e-mail address."""
        field_name = self.names["employee_email_field"]
        rows = self.client.query("Relationship_Person_Contact_Employee", select=["ID"],
                                 filter=f"{field_name} eq {literal(email)}", top=2)["value"]
        return rows[0]["ID"] if rows else None

    def _managers(self, row: dict[str, Any]) -> tuple[str | None, tuple[str, ...]]:
        manager = (row.get(self.names["manager_nav"]) or {}).get("ID")
        owners = tuple(o.get("ID") for o in row.get(self.names["owners_nav"]) or [])
        return manager, owners

    def from_contact(self, row: dict[str, Any]) -> Relationship:
        """A contact row; a field the answer does not carry is left out of ``fields``
        (unknown, never empty: the link writes nothing for it)."""
        person = row.get("Person") or {}
        fields = _known(person, {**PERSON, "PhoneNumber": "homePhone"})
        fields.update(_known(row, {"EmailAddress": "email", "PhoneNumber": "workPhone",
                                   "MobilePhoneNumber": "mobile",
                                   self.names["function_field"]: "jobTitle"}))
        manager, owners = self._managers(row)
        times = [t for t in (row.get("LastMutationDate"), person.get("LastMutationDate")) if t]
        return Relationship(row["ID"], "contact", person.get("ID", ""), fields, manager,
                            owners, bool(row.get(self.names["former_field"])),
                            max(times) if times else None)

    def from_person(self, row: dict[str, Any]) -> Relationship:
        fields = _known(row, {**PERSON, "EmailAddress": "email",
                              "MobilePhoneNumber": "mobile", "PhoneNumber": "homePhone"})
        manager, owners = self._managers(row)
        return Relationship(row["ID"], "private", row["ID"], fields, manager, owners,
                            bool(row.get(self.names["former_field"])),
                            row.get("LastMutationDate"))

    def relationships(self) -> list[Relationship]:
        """Every contact and every private person that has a manager or owners."""
        out = [self.from_contact(r) for r in self.client.iterate(
            self.contact_set, expand=self._expand(False))]
        for row in self.client.iterate(self.person_set, expand=self._expand(True)):
            rel = self.from_person(row)
            if rel.manager or rel.owners:
                out.append(rel)
        return out

    def changed_since(self, since: str) -> list[Relationship]:
        """The relationships changed at or after ``since`` (ISO-8601): contacts changed
        themselves or through their person, and private persons (apis.md 1.3:
        ``LastMutationDate`` is filterable), instead of reading them all."""
        stamp = f"LastMutationDate ge {since}"
        out = {r.key: r for r in (self.from_contact(row) for row in self.client.iterate(
            self.contact_set, expand=self._expand(False), filter=stamp))}
        persons = list(self.client.iterate(self.person_set, expand=self._expand(True),
                                           filter=stamp))
        ids = [p["ID"] for p in persons]
        for start in range(0, len(ids), 50):
            chunk = ids[start:start + 50]
            for row in self.client.iterate(self.contact_set, expand=self._expand(False),
                                           filter=any_of("Person/ID", chunk)):
                out.setdefault(row["ID"], self.from_contact(row))
        for row in persons:
            rel = self.from_person(row)
            if rel.manager or rel.owners:
                out.setdefault(rel.key, rel)
        return list(out.values())

    def named(self, ids: list[str]) -> list[Relationship]:
        """The relationships webhooks named: a contact or private person by its id, and
        the contacts of a person whose own fields changed (``Person/ID``)."""
        out: dict[str, Relationship] = {}
        for key in dict.fromkeys(ids):
            rel = self.get(key)
            if rel is not None:
                out.setdefault(rel.key, rel)
        persons = [k for k in dict.fromkeys(ids) if k not in out or out[k].kind == "private"]
        for start in range(0, len(persons), 50):
            chunk = persons[start:start + 50]
            for row in self.client.iterate(self.contact_set, expand=self._expand(False),
                                           filter=any_of("Person/ID", chunk)):
                out.setdefault(row["ID"], self.from_contact(row))
        return list(out.values())

    def get(self, key: str) -> Relationship | None:
        row = self.client.get(self.contact_set, key, expand=self._expand(False))
        if row is not None:
            return self.from_contact(row)
        row = self.client.get(self.person_set, key, expand=self._expand(True))
        return None if row is None else self.from_person(row)

    def write(self, rel: Relationship, fields: dict[str, Any]) -> None:
        """Write neutral ``fields`` to the person and, for a contact, to the contact."""
        person: dict[str, Any] = {k: fields[v] for k, v in PERSON.items() if v in fields}
        if "birthday" in fields:
            person["BirthDate"] = fields["birthday"] or None
        own: dict[str, Any] = {}
        if rel.kind == "contact":
            for neutral, name in (("email", "EmailAddress"), ("workPhone", "PhoneNumber"),
                                  ("mobile", "MobilePhoneNumber"),
                                  ("jobTitle", self.names["function_field"])):
                if neutral in fields:
                    own[name] = fields[neutral] or None
        else:
            for neutral, name in (("email", "EmailAddress"), ("mobile", "MobilePhoneNumber"),
                                  ("homePhone", "PhoneNumber")):
                if neutral in fields:
                    person[name] = fields[neutral] or None
        if person:
            self.client.update(self.person_set, rel.person_id, person)
        if own:
            self.client.update(self.contact_set, rel.key, own)


def _known(row: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """``row``'s fields by neutral name, those the row carries only; a date by its day."""
    out = {neutral: row[name] for name, neutral in names.items() if name in row}
    if "birthday" in out:
        out["birthday"] = (out["birthday"] or None) and str(out["birthday"])[:10]
    return out
