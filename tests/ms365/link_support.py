"""A world for the link tests: the Tribe emulator with employees and relationships that have
a manager and owners, the identity and Graph emulators, linked users, and a UserLink."""

from __future__ import annotations

from syncd_ms365.auth import Accounts
from syncd_ms365.connector import Ms365Connector
from syncd_ms365.link import UserLink
from syncd_ms365.pairs import Pairs
from syncd_tribe.client import TribeClient
from syncd_tribe.connector import TribeConnector
from syncd_tribe.options import resolve_options
from syncd_tribe.people import TribePeople

from tests.ms365.conftest import CLIENT_ID

ORG = "00000000-0000-4000-8000-000000000001"


class World:
    def __init__(self, tribe, identity, graph, state_dir):
        self.tribe_emu, self.identity, self.graph_emu = tribe, identity, graph
        self.client = TribeClient(resolve_options(TribeConnector.sandbox_config(tribe)))
        self.people = TribePeople(self.client, "Relation_Person",
                                  "Relationship_Person_Contact_Standard")
        options = {o.name: o.default for o in Ms365Connector.options}
        options.update(authority=identity.authority, client_id=CLIENT_ID,
                       ca_bundle=identity.ca_bundle, graph_url=f"{graph.url}/v1.0")
        self.connector = Ms365Connector("outlook", options)
        self.connector.state_dir = str(state_dir)
        self.connector.start()
        self.accounts: Accounts = self.connector.accounts
        self.pairs = Pairs(str(state_dir / "pairs.sqlite3"))
        self.employees: dict[str, str] = {}

    def close(self) -> None:
        self.pairs.close()
        self.connector.stop()
        self.client.close()

    def employee(self, email: str) -> str:
        row = self.client.create("Relationship_Person_Contact_Employee", {
            "EmailAddress": email, "Relation": {"ID": ORG},
            "Person": {"FirstName": email.split("@")[0], "LastName": "Staff"}})
        self.employees[email] = row["ID"]
        return row["ID"]

    def link_user(self, email: str) -> UserLink:
        self.identity.login_as = email
        self.accounts.authorize_device(email, lambda message: None)
        employee = self.people.employee(email)
        assert employee, email
        return UserLink(email, employee, self.people, self.connector.mailbox, self.pairs)

    def contact(self, *, manager: str | None = None, owners: tuple[str, ...] = (),
                former: bool = False, **fields) -> str:
        person = {k: fields.pop(k) for k in list(fields) if k in (
            "FirstName", "LastName", "MiddleName", "Initials", "BirthDate", "PhoneNumber")}
        if "WorkPhone" in fields:  # the contact's own phone number
            fields["PhoneNumber"] = fields.pop("WorkPhone")
        person.setdefault("LastName", "Doe")
        body = {"Relation": {"ID": ORG}, "Person": person, "IsFormer": former, **fields}
        if manager:
            body["AccountManager"] = {"ID": self.employees[manager]}
        body["Owners"] = [{"ID": self.employees[o]} for o in owners]
        return self.client.create("Relationship_Person_Contact_Standard", body)["ID"]

    def private(self, *, manager: str | None = None, **fields) -> str:
        body = {"LastName": "Private", **fields}
        if manager:
            body["AccountManager"] = {"ID": self.employees[manager]}
        return self.client.create("Relation_Person", body)["ID"]

    def outlook(self, email: str) -> list[dict]:
        oid = self.identity.users[email]
        with self.graph_emu.store.lock:
            return [dict(c) for c in self.graph_emu.store.mailbox(oid).contacts.values()]

    def outlook_by_key(self, email: str) -> dict[str, dict]:
        prop = self.connector.mailbox.property_id
        return {c["_ext"][prop]: c for c in self.outlook(email) if c.get("_ext", {}).get(prop)}

    def patch_outlook(self, email: str, cid: str, body: dict) -> None:
        self.graph_emu.store.update(self.identity.users[email], cid, body)

    def tribe(self, set_name: str, key: str) -> dict:
        return self.client.get(set_name, key)
