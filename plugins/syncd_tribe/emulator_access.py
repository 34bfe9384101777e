"""What tests and the sandbox read straight from the Tribe emulator's store (not through the
API): entities as they are, whatever the account's switches (``label_navs``, ``omit_navs``)
make the API answer."""

from __future__ import annotations

import threading
from typing import Any

from syncd_tribe.emulator_store import LABEL_LINKS_NAV, Store


class Accessors:
    """Mixed into :class:`~syncd_tribe.emulator.TribeEmulator` (``lock``, ``store``)."""

    lock: threading.RLock
    store: Store

    def _entities(self, set_name: str, expand: dict | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [self.store.render(eid, None, expand or {}, api=False)
                    for eid in self.store.ids_of(set_name)]

    def label_times(self, eid: str) -> dict[str, str]:
        """``{label name: when it was set}`` of a person (the links' ``CreationDate``)."""
        with self.lock:
            found = self.store.find("Relation_Person", eid)
            if found is None:
                return {}
            out = {}
            for link in self.store.navs[found].get(LABEL_LINKS_NAV) or []:
                label = self.store.navs.get(link, {}).get("Label")
                if label in self.store.entities and link in self.store.entities:
                    out[self.store.entities[label]["Name"]] = \
                        self.store.entities[link]["CreationDate"]
            return out

    def persons(self) -> list[dict[str, Any]]:
        return self._entities("Relation_Person", {"Labels": {"select": ["ID", "Name"]}})

    def person(self, eid: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.store.find("Relation_Person", eid)
            return None if found is None else self.store.render(
                found, None, {"Labels": {"select": ["ID", "Name"]}}, api=False)

    def contacts(self) -> list[dict[str, Any]]:
        return self._entities("Relationship_Person_Contact_Standard", {
            "Person": {"select": ["ID"]}, "Relation": {"select": ["ID", "Name"]}})

    def organizations(self) -> list[dict[str, Any]]:
        return self._entities("Relation_Organization")

    def labels(self) -> list[dict[str, Any]]:
        return self._entities("Label")

    def tasks(self) -> list[dict[str, Any]]:
        return self._entities("Activity_Task", {"Assignee": {"select": ["ID"]}})

    def activities(self, set_name: str = "Activity_Event") -> list[dict[str, Any]]:
        """Activities (response data lands in ``Activity_Event`` by default) with their
        links' IDs."""
        expand = {nav: {"select": ["ID"]} for nav in self.store.model[set_name][1]}
        return self._entities(set_name, expand)

    def add_employee(self, first: str, last: str) -> str:
        """A new employee of the own organisation; returns its (Employee) ID."""
        with self.lock:
            person = self.store.put("Relation_Person", {"FirstName": first, "LastName": last})
            org = next(iter(self.store.ids_of("Relation_Organization")))
            employee = self.store.put("Relationship_Person_Contact_Employee", {
                "EmailAddress": f"{first.lower()}@sandbox.test"},
                {"Person": person["ID"], "Relation": org})
            return employee["ID"]

    def set_account_manager(self, contact_id: str, employee_id: str | None) -> None:
        """The contact relationship's ``AccountManager`` (an Employee)."""
        with self.lock:
            self.store.put("Relationship_Person_Contact_Standard", {"ID": contact_id},
                           {"AccountManager": employee_id})
