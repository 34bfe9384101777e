"""The Tribe emulator's data: entity sets in memory, navigation links, and the writes (the
OData queries and rendering are :mod:`syncd_tribe.emulator_reads`).

Labels on a relation (person or organisation) are reachable two ways, kept consistent here:
the collection navigation ``Labels`` (label entities; writable by binding the whole list,
``{"Labels": [{"ID": ...}]}``) and ``LabelAssignments``: *link* entities of the set
``LabelAssignment`` (navigations ``Relation`` and ``Label``) whose ``CreationDate`` is when the
label was set on the relation. Links are created with ``POST /LabelAssignment`` and removed
with ``DELETE /LabelAssignment(id)``; binding ``Labels`` creates and removes them too (a label
kept keeps its link and so its time). The real API's names for this are a GAP (apis.md 1.4):
the connector's ``labels_nav`` / ``label_link_*`` options name them.

Entities are plain dicts of scalar fields, kept by id; navigation links are kept apart
(``navs[id] = {"Person": pid, "Labels": [..]}``) so that rendering an entity is a dict copy.
A reverse index per single-valued navigation answers ``Person/ID eq a or ...`` without a
scan, and the sorted, filtered id list of a query is cached until the next write, so that
``$orderby=ID&$skip=k`` paging over 20,000 persons does not re-sort per page.

The store is not thread-safe by itself: the emulator holds its lock around every call.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from syncd_tribe.emulator_model import (  # noqa: F401 (re-exported)
    ACTIVITY_REQUIRED,
    FIELDS,
    INLINE_TARGET,
    LABEL_LINK_SET,
    LABEL_LINKS_NAV,
    LABELLED,
    LABELS_NAV,
    READ_ONLY,
    SCORE_FIELD,
    SETS,
    STANDARD,
    UNDELETABLE,
    concrete_sets,
    metadata,
)
from syncd_tribe.emulator_reads import StoreReads
from syncd_tribe.odata import ODataError


def fmt_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Store(StoreReads):
    def __init__(self):
        self.entities: dict[str, dict[str, Any]] = {}  # id -> fields
        self.navs: dict[str, dict[str, Any]] = {}  # id -> nav name -> id | [ids]
        self.set_of: dict[str, str] = {}  # id -> concrete set
        self.members: dict[str, dict[str, None]] = {s: {} for s in SETS}  # ordered sets
        self.reverse: dict[tuple[str, str], dict[str, set[str]]] = {}  # (set, nav) -> tgt -> ids
        self._cache: dict[tuple, list[str]] = {}
        self._last_time = datetime.now(UTC)
        self.version = 0
        #: Navigations left out of every answer even when expanded (the emulator's
        #: ``omit_navs`` switch).
        self.omit_navs: set[str] = set()
        #: False: POSTing a label link for a label already set answers 409; True: it makes
        #: another link (an entity set without a uniqueness constraint). A GAP: see the
        #: emulator's ``duplicate_label_links``.
        self.duplicate_label_links = False
        #: What the API serves of the model: :data:`SETS` less the navigations this account
        #: lacks (see :mod:`syncd_tribe.emulator_query`); the fixture path writes all.
        self.model: dict[str, tuple[str, dict[str, tuple[str, bool]]]] = SETS
        #: The scalar fields of each set in this account (``person_former_field`` adds one).
        self.fields: dict[str, tuple[str, ...]] = FIELDS

    # -- time ------------------------------------------------------------------------------

    def now(self) -> str:
        """A strictly increasing timestamp (LastMutationDate never ties within the store)."""
        stamp = max(datetime.now(UTC), self._last_time + timedelta(microseconds=1))
        self._last_time = stamp
        return fmt_time(stamp)

    # -- low-level writes (no validation, no webhooks): the fixture path ----------------------

    def put(self, set_name: str, fields: dict[str, Any], navs: dict[str, Any] | None = None,
            stamp: str | None = None) -> dict[str, Any]:
        eid = str(fields.get("ID") or uuid.uuid4()).lower()
        old = self.entities.get(eid)
        if old is None:
            created = stamp or self.now()
            entity = {"ID": eid, "_Type": SETS[set_name][0], "_Name": None, "SortIndex": None,
                      "CreationDate": created, "LastMutationDate": created, "ImportId": None}
            entity.update(dict.fromkeys(self.fields[set_name]))
            self.set_of[eid] = set_name
            self.members[set_name][eid] = None
            self.navs[eid] = {}
        else:
            entity = old
        for key, value in fields.items():
            if key not in READ_ONLY and key != "ID":
                entity[key] = value
        if old is not None:
            entity["LastMutationDate"] = stamp or self.now()
        self.entities[eid] = entity
        for nav, target in (navs or {}).items():
            self._link(eid, set_name, nav, target, stamp)
        entity["_Name"] = self._display_name(eid)
        self.touch()
        return entity

    def _link(self, eid: str, set_name: str, nav: str, target: Any,
              stamp: str | None = None) -> None:
        _, collection = SETS[set_name][1][nav]
        current = self.navs[eid].get(nav)
        if collection:
            targets = list(dict.fromkeys(target or []))
            if set_name in LABELLED and nav == LABEL_LINKS_NAV:
                return  # derived from the links themselves: see _sync_label_links
            self.navs[eid][nav] = targets
            if set_name in LABELLED and nav == LABELS_NAV:
                self._sync_label_links(eid, targets, stamp)
            return
        if current is not None:
            self.reverse.get((set_name, nav), {}).get(current, set()).discard(eid)
        self.navs[eid][nav] = target
        if target is not None:
            self.reverse.setdefault((set_name, nav), {}).setdefault(target, set()).add(eid)

    # -- label links -----------------------------------------------------------------------

    def _sync_label_links(self, owner: str, labels: list[str], stamp: str | None) -> None:
        """Make ``owner``'s links match its ``labels``: links of kept labels stay (with their
        time), links of dropped labels go, new labels get a link made ``stamp`` (or now)."""
        links = [k for k in self.navs[owner].get(LABEL_LINKS_NAV) or [] if k in self.entities]
        by_label = {self.navs[k].get("Label"): k for k in links}
        for label, link in by_label.items():
            if label not in labels:
                self.remove(link)
        kept = []
        for label in labels:
            link = by_label.get(label)
            if link is None:
                link = self.put(LABEL_LINK_SET, {}, {"Relation": owner, "Label": label},
                                stamp=stamp)["ID"]
            kept.append(link)
        self.navs[owner][LABEL_LINKS_NAV] = kept

    def add_label_link(self, owner: str, label: str) -> dict[str, Any]:
        """Set ``label`` on ``owner`` as a new link (409 when it is set already, unless
        ``duplicate_label_links``: then a second link)."""
        if self.set_of.get(owner) not in LABELLED:
            raise ODataError("'Relation' must be a person or an organisation")
        labels = self.navs[owner].setdefault(LABELS_NAV, [])
        if label in labels and not self.duplicate_label_links:
            raise ODataError("the label is already set on this relation", status=409)
        link = self.put(LABEL_LINK_SET, {}, {"Relation": owner, "Label": label})
        if label not in labels:
            labels.append(label)
        self.navs[owner].setdefault(LABEL_LINKS_NAV, []).append(link["ID"])
        self.put(self.set_of[owner], {"ID": owner})  # the owner changed: LastMutationDate
        return link

    def owner_of_link(self, link: str) -> str | None:
        owner = self.navs.get(link, {}).get("Relation")
        return owner if owner in self.entities else None

    def remove(self, eid: str) -> None:
        if self.set_of.get(eid) == LABEL_LINK_SET:
            owner, label = self.owner_of_link(eid), self.navs[eid].get("Label")
            if owner is not None:
                navs = self.navs[owner]
                navs[LABEL_LINKS_NAV] = [x for x in navs.get(LABEL_LINKS_NAV) or [] if x != eid]
                if not any(self.navs.get(x, {}).get("Label") == label
                           for x in navs[LABEL_LINKS_NAV]):  # its last link: the label goes
                    navs[LABELS_NAV] = [x for x in navs.get(LABELS_NAV) or [] if x != label]
        set_name = self.set_of.pop(eid)
        del self.members[set_name][eid]
        for nav, target in self.navs.pop(eid).items():
            if isinstance(target, str):
                self.reverse.get((set_name, nav), {}).get(target, set()).discard(eid)
        del self.entities[eid]
        self.touch()

    def touch(self) -> None:
        self.version += 1
        self._cache.clear()

    def _display_name(self, eid: str) -> str | None:
        e = self.entities[eid]
        set_name = self.set_of[eid]
        if set_name == "Relation_Person":
            return " ".join(p for p in (e.get("FirstName"), e.get("MiddleName"),
                                        e.get("LastName")) if p) or None
        if set_name.startswith("Relationship_"):
            names = [self.entities[t].get("_Name") for t in
                     (self.navs[eid].get("Person"), self.navs[eid].get("Relation"))
                     if t in self.entities]
            return " - ".join(n for n in names if n) or None
        return e.get("Name") or e.get("Subject")

    # -- API writes: validated, report what changed (for webhooks) --------------------------

    def write(self, set_name: str, body: Any, eid: str | None,
              changes: list[tuple[str, str]]) -> dict[str, Any]:
        """Create (``eid`` None) or partially update an entity from an API body; appends
        ``(id, "created" | "changed")`` to ``changes`` for it and any inline-created one."""
        if not isinstance(body, dict):
            raise ODataError("the body must be a JSON object")
        navdefs = self.model[set_name][1]
        fields: dict[str, Any] = {}
        links: dict[str, Any] = {}
        if set_name == LABEL_LINK_SET:
            return self._write_link(body, eid, changes)
        for key, value in body.items():
            if key.startswith("@odata"):
                continue
            if key == LABEL_LINKS_NAV and set_name in LABELLED:
                raise ODataError(f"'{LABEL_LINKS_NAV}' is read-only: POST to {LABEL_LINK_SET} "
                                 f"or bind '{LABELS_NAV}'")
            if key in navdefs:
                links[key] = self._resolve(navdefs[key], key, value, changes)
            elif isinstance(value, dict | list):
                raise ODataError(f"'{key}' is not a navigation property of {SETS[set_name][0]}")
            elif key not in self.fields[set_name] and key not in STANDARD:  # as Olingo does
                raise ODataError(f"The property '{key}' does not exist in '{SETS[set_name][0]}'")
            else:
                fields[key] = value
        if eid is None:
            if set_name == "Relation_Person" and not fields.get("LastName"):
                raise ODataError("LastName is required")
            missing = [f for f in ACTIVITY_REQUIRED.get(set_name, ())
                       if fields.get(f) in (None, "") and not links.get(f)]
            if missing:
                raise ODataError(f"{', '.join(missing)} required on {set_name}")
            if set_name.startswith("Relationship_Person_Contact") and not (
                    links.get("Person") and links.get("Relation")):
                raise ODataError("a contact needs Person and Relation")
            fields.pop("ID", None)
        else:
            fields["ID"] = eid
        entity = self.put(set_name, fields, links)
        changes.append((entity["ID"], "created" if eid is None else "changed"))
        return entity

    def _write_link(self, body: dict[str, Any], eid: str | None,
                    changes: list[tuple[str, str]]) -> dict[str, Any]:
        if eid is not None:
            raise ODataError(f"a {LABEL_LINK_SET} cannot be changed: delete it and create "
                             "another")
        navdefs = SETS[LABEL_LINK_SET][1]
        links = {}
        for nav in ("Relation", "Label"):
            value = body.get(nav)
            if not isinstance(value, dict) or not value.get("ID"):
                raise ODataError(f"a {LABEL_LINK_SET} needs {{\"{nav}\": {{\"ID\": ...}}}}")
            links[nav] = self._resolve(navdefs[nav], nav, value, changes)
        link = self.add_label_link(links["Relation"], links["Label"])
        changes.append((link["ID"], "created"))
        changes.append((links["Relation"], "changed"))
        return link

    def _resolve(self, navdef: tuple[str, bool], nav: str, value: Any,
                 changes: list[tuple[str, str]]) -> Any:
        target, many = navdef
        if many:
            if not isinstance(value, list):
                raise ODataError(f"'{nav}' takes an array of {{\"ID\": ...}}")
            return [self._resolve((target, False), nav, v, changes) for v in value]
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ODataError(f"'{nav}' takes an object {{\"ID\": ...}}")
        if value.get("ID"):
            found = self.find(target, str(value["ID"]))
            if found is None:
                raise ODataError(f"'{nav}': no {target} with ID {value['ID']}")
            return found
        return self.write(INLINE_TARGET.get(target, target), value, None, changes)["ID"]
