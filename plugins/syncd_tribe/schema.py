"""Tribe's live schema: ``$metadata`` (OData CSDL XML) read and checked against the config.

:func:`parse` reads the CSDL into entity types (properties, navigations, base types) and
entity sets. :func:`check` (the connector's ``check_schema``) then checks what the config
names in the account, each problem with its config key and a "did you mean":

- the entity sets ``person_set`` and ``contact_set`` (with its ``Person`` and ``Relation``
  navigations, which the connector reads contacts through);
- every field path of conditions, field mappings and ``email_fields``, as the connector
  flattens a person: ``Field`` (the person), ``Contact.Field`` (its contact),
  ``Contact.Organization.Field`` (the contact's ``Relation``);
- when a consent mapping or a selection uses labels: ``labels_nav`` and the ``label_link_*``
  options, ``label_set``/``label_link_set``, and every label name used (the label list);
- ``former_field``;
- every group (``groups``): its filter parsed and its paths checked locally, then run with
  ``$top=0`` (whatever else the server refuses shows then); overviews must name a group.

A navigation typed with an abstract type (``Relation``) reaches the properties of every type
derived from it. Nothing here writes.

The requests and what backs them (``shared/apis.md``): ``GET /v1/odata/$metadata`` with
``Accept: application/xml`` (1.3, "Metadata": XML); the label list ``GET
/v1/odata/{label_set}?$select=ID,Name`` paged with ``$top``/``$skip`` (1.4: labels exist as an
entity, their set name is a GAP, hence the option; 1.5: paging); each group ``GET
/v1/odata/{person_set}?$filter=...&$top=0`` (1.5: ``$filter``, ``$top``).
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from syncd.plugin import (
    NeedKind,
    RemoteError,
    SchemaNeeds,
    SchemaProblem,
    connection_key,
    missing,
    toml_key,
)
from syncd_tribe import odata
from syncd_tribe.activities import check_activities
from syncd_tribe.client import ODATA

if TYPE_CHECKING:
    from syncd_tribe.connector import TribeConnector

#: The contact's navigations the connector reads through (``Person/ID``, ``Relation``).
CONTACT_NAVS = ("Person", "Relation")
CONTACT = "Contact."
ORGANIZATION = "Contact.Organization."


@dataclass
class EntityType:
    name: str
    base: str | None = None
    abstract: bool = False
    properties: dict[str, str] = field(default_factory=dict)  # name -> Edm type
    navigations: dict[str, tuple[str, bool]] = field(default_factory=dict)  # -> (type, many)


@dataclass
class Metadata:
    types: dict[str, EntityType] = field(default_factory=dict)  # by name without namespace
    sets: dict[str, str] = field(default_factory=dict)  # entity set -> type name

    def _chain(self, name: str) -> list[EntityType]:
        out, seen = [], set()
        while name in self.types and name not in seen:
            seen.add(name)
            out.append(self.types[name])
            name = self.types[name].base or ""
        return out

    def _family(self, name: str) -> list[str]:
        """``name`` and every type derived from it."""
        return [t for t in self.types if any(c.name == name for c in self._chain(t))]

    def properties(self, name: str) -> set[str]:
        """The properties of ``name`` or of any type derived from it (inherited included)."""
        return {p for t in self._family(name) for c in self._chain(t) for p in c.properties}

    def navigations(self, name: str) -> dict[str, tuple[str, bool]]:
        return {n: v for t in self._family(name) for c in self._chain(t)
                for n, v in c.navigations.items()}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _type_name(text: str | None) -> tuple[str, bool]:
    text = text or ""
    many = text.startswith("Collection(") and text.endswith(")")
    if many:
        text = text[len("Collection("):-1]
    return text.rsplit(".", 1)[-1], many


def parse(document: bytes | str) -> Metadata:
    """The entity types and sets of a CSDL XML document (namespaces stripped)."""
    root = ET.fromstring(document)
    meta = Metadata()
    for element in root.iter():
        tag = _local(element.tag)
        if tag == "EntityType":
            etype = EntityType(element.get("Name", ""),
                               _type_name(element.get("BaseType"))[0] or None,
                               element.get("Abstract") == "true")
            for child in element:
                ctag = _local(child.tag)
                if ctag == "Property":
                    etype.properties[child.get("Name", "")] = child.get("Type", "")
                elif ctag == "NavigationProperty":
                    etype.navigations[child.get("Name", "")] = _type_name(child.get("Type"))
            meta.types[etype.name] = etype
        elif tag == "EntitySet":
            meta.sets[element.get("Name", "")] = _type_name(element.get("EntityType"))[0]
    return meta


def read(connector: TribeConnector) -> Metadata:
    response = connector.client.http.get(f"{ODATA}/$metadata",
                                         headers={"Accept": "application/xml"})
    try:
        return parse(response.content)
    except ET.ParseError as exc:
        raise RemoteError(f"GET /{ODATA}/$metadata answered no CSDL XML ({exc}): is "
                          f"base_url the Tribe API?") from None


class _Checker:
    def __init__(self, connector: TribeConnector, meta: Metadata, needs: SchemaNeeds):
        self.c = connector
        self.opts = connector.opts
        self.meta = meta
        self.needs = needs
        self.problems: list[SchemaProblem] = []

    def key(self, *parts: str) -> str:
        return connection_key(self.c.name, *parts)

    def add(self, problem: SchemaProblem) -> None:
        self.problems.append(problem)

    # -- entity sets -------------------------------------------------------------------------

    def entity_type(self, option: str) -> str | None:
        name = self.opts[option]
        if name in self.meta.sets:
            return self.meta.sets[name]
        self.add(missing(self.key(option), f"Tribe has no entity set {name!r}", name,
                         self.meta.sets))
        return None

    # -- field paths -------------------------------------------------------------------------

    def paths(self, person: str | None, contact: str | None) -> dict[str, str]:
        """Every field path a record of this account can have -> the type it belongs to."""
        out: dict[str, str] = {}
        if person is not None:
            out.update(dict.fromkeys(sorted(self.meta.properties(person)), person))
        if contact is not None:
            out.update({CONTACT + p: contact for p in sorted(self.meta.properties(contact))})
            org = self.meta.navigations(contact).get("Relation")
            if org is not None:
                out.update({ORGANIZATION + p: org[0]
                            for p in sorted(self.meta.properties(org[0]))})
        return out

    def path(self, path: str, key: str, paths: dict[str, str], what: str) -> None:
        if path in paths:
            return
        if path.startswith(ORGANIZATION):
            prefix = ORGANIZATION
        elif path.startswith(CONTACT):
            prefix = CONTACT
        else:
            prefix = ""
        near = [p for p in paths if p.startswith(prefix)
                and (prefix or not p.startswith(CONTACT))]
        owner = paths[near[0]] if near else "the record"
        leaf = path[len(prefix):]
        self.add(missing(key, f"{what} {path!r}: {owner} has no field {leaf!r}", path,
                         paths if not near else near))

    # -- labels ------------------------------------------------------------------------------

    def labels(self, person: str) -> None:
        labels = self.needs.of(NeedKind.LABEL)
        nav, link = self.opts["labels_nav"], self.opts["label_link_label_nav"]
        if not labels:
            return
        uses = ", ".join(n.key for n in labels[:3])
        if not nav:
            self.add(SchemaProblem(self.key("labels_nav"), f"is empty, but labels are used "
                                   f"({uses})", fix="set labels_nav to the person's label "
                                   "navigation (see $metadata)"))
            return
        navs = self.meta.navigations(person)
        if nav not in navs:
            # candidates: collections that lead to labels or label links (not e.g. Owners)
            many = [n for n, (target, coll) in navs.items() if coll and "label" in
                    target.lower()]
            found = missing(self.key("labels_nav"), f"{person} has no navigation {nav!r} "
                            f"(labels are used: {uses})", nav, many)
            if found.suggestion is None and len(many) == 1:  # the only candidate there is
                found = dataclasses.replace(found, suggestion=many[0], fix=None)
            if found.suggestion is not None:
                straight = "Name" in self.meta.properties(navs[found.suggestion][0])
                if straight and link:  # it leads to the labels themselves, not to links
                    found = dataclasses.replace(found, fix='and set label_link_label_nav = "" '
                                                f"({found.suggestion} leads straight to the "
                                                "labels)")
                elif not straight and not link:
                    found = dataclasses.replace(found, fix="and set label_link_label_nav to "
                                                f"the navigation from a {found.suggestion} "
                                                'link to its label (see $metadata, e.g. '
                                                '"Label")')
            self.add(found)
            return
        target = navs[nav][0]
        label_type: str | None = target
        if link:
            link_navs = self.meta.navigations(target)
            for option in ("label_link_label_nav", "label_link_owner_nav"):
                name = self.opts[option]
                if name not in link_navs:
                    self.add(missing(self.key(option), f"{target} (the target of labels_nav "
                                     f"{nav!r}) has no navigation {name!r}", name, link_navs,
                                     fix='if labels_nav leads straight to the labels, set '
                                         'label_link_label_nav = ""'))
            time_field = self.opts["label_link_time_field"]
            if time_field not in self.meta.properties(target):
                self.add(missing(self.key("label_link_time_field"), f"{target} has no field "
                                 f"{time_field!r}", time_field, self.meta.properties(target)))
            label_type = link_navs.get(link, (None, False))[0]
            self.entity_type("label_link_set")
        if label_type is not None and "Name" not in self.meta.properties(label_type):
            self.add(SchemaProblem(self.key("labels_nav"), f"its labels ({label_type}) have "
                                   "no field 'Name'", have=tuple(sorted(
                                       self.meta.properties(label_type)))))
        if self.entity_type("label_set") is not None:
            self.label_names(labels)

    def label_names(self, labels: Iterable) -> None:
        names = [str(x.get("Name")) for x in self.c.client.iterate(
            self.opts["label_set"], page_size=500, select=["ID", "Name"]) if x.get("Name")]
        folded = {n.casefold() for n in names}
        for need in labels:
            if need.name not in names and need.name.casefold() not in folded:
                self.add(missing(need.key, f"Tribe has no label {need.name!r}", need.name,
                                 names, fix="create the label in Tribe"))

    # -- groups ------------------------------------------------------------------------------

    def groups(self, person: str) -> None:
        groups = self.opts.get("groups") or {}
        for need in self.needs.of(NeedKind.GROUP):
            if need.name not in groups:  # the config's groups, not the account's: no "have"
                found = missing(need.key, f"names no group of {self.key('groups')} (its "
                                f"groups: {', '.join(sorted(groups)) or 'none'})", need.name,
                                groups, fix=f"add it to {self.key('groups')} as an OData "
                                "filter on persons")
                self.add(dataclasses.replace(found, have=()))
        for name, flt in groups.items():
            key = self.key("groups", toml_key(name))
            try:
                ast = odata.parse_filter(flt)
            except odata.ODataError as exc:
                self.add(SchemaProblem(key, f"is not a valid OData filter: {exc}"))
                continue
            before = len(self.problems)
            for path in sorted(set(_paths(ast))):
                self.filter_path(person, path, key)
            if len(self.problems) > before:
                continue
            try:
                self.c.client.query(self.opts["person_set"], filter=flt, top=0)
            except RemoteError as exc:
                if exc.status is None or exc.status >= 500 or exc.status in (401, 403, 429):
                    raise
                self.add(SchemaProblem(key, f"Tribe refuses the filter: {exc}"))

    def filter_path(self, person: str, path: tuple[str, ...], key: str) -> None:
        current = person
        for segment in path[:-1]:
            navs = self.meta.navigations(current)
            if segment not in navs:
                self.add(missing(key, f"the filter's path {'/'.join(path)!r}: {current} has "
                                 f"no navigation {segment!r}", segment, navs))
                return
            current = navs[segment][0]
        props = self.meta.properties(current)
        if path[-1] not in props:
            self.add(missing(key, f"the filter's path {'/'.join(path)!r}: {current} has no "
                             f"field {path[-1]!r}", path[-1], props))


def _paths(node: tuple) -> Iterable[tuple[str, ...]]:
    if node[0] == "path":
        yield node[1]
    elif node[0] == "fn":
        for arg in node[2]:
            yield from _paths(arg)
    elif node[0] in ("and", "or", "cmp", "not"):
        for child in node[1:]:
            if isinstance(child, tuple):
                yield from _paths(child)


def check(connector: TribeConnector, needs: SchemaNeeds) -> list[SchemaProblem]:
    """The connector's ``check_schema``: see the module's docstring."""
    c = _Checker(connector, read(connector), needs)
    person = c.entity_type("person_set")
    contact = c.entity_type("contact_set")
    if contact is not None:
        navs = c.meta.navigations(contact)
        for nav in CONTACT_NAVS:
            if nav not in navs:
                c.add(SchemaProblem(c.key("contact_set"), f"{contact} has no navigation "
                                    f"{nav!r} (syncd reads contacts through it)",
                                    have=tuple(sorted(navs))))
        former = connector.opts["former_field"]
        if former and former not in c.meta.properties(contact):
            c.add(missing(c.key("former_field"), f"{contact} has no field {former!r}", former,
                          c.meta.properties(contact)))
    paths = c.paths(person, contact)
    if person is None or contact is None:
        return c.problems  # the paths cannot be told apart from a missing set
    for need in needs.of(NeedKind.FIELD):
        what = "condition on" if ".conditions." in need.key else "field"
        c.path(need.name, need.key, paths, what)
    for i, path in enumerate(connector.opts["email_fields"]):
        c.path(path, c.key(f"email_fields[{i}]"), paths, "e-mail field")
    c.labels(person)
    c.groups(person)
    check_activities(c, contact)  # response data and tasks: syncd_tribe.activities
    return c.problems
