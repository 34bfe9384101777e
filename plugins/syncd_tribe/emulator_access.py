"""What tests and the sandbox read straight from the Tribe emulator's store (not through the
API): entities as they are, whatever the account's switches (``label_navs``, ``omit_navs``)
make the API answer."""

from __future__ import annotations

from typing import Any

from syncd_tribe.emulator_store import LABEL_LINKS_NAV


class Accessors:
    """Mixed into :class:`~syncd_tribe.emulator.TribeEmulator` (``lock``, ``store``)."""

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
