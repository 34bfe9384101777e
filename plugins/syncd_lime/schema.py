"""Lime's live schema: the limetype API read and checked against the config (preflight).

:func:`check` (the connector's ``check_schema``) reads ``GET /api/v1/limetype/`` and the
limetypes the config uses (``GET /api/v1/limetype/{name}/``, apis.md 2.1), then checks, each
problem with its config key and a "did you mean":

- ``person_limetype``, and on it ``email_property`` and ``company_relation`` (a relation to
  ``company_limetype``);
- every field path of conditions and field mappings: ``prop`` (the person) or
  ``<company_relation>.prop`` (its company);
- when a consent mapping is used: the consent add-on's limetypes (``consent_limetype``,
  ``consenttype_limetype``; missing, the problem says the add-on is not installed), the
  consent's properties and relations, the type's title, and every consent type title the
  mappings name (``GET /api/v1/limeobject/consenttype/``);
- every group (``groups``): its filter's property names on the person, then the filter run
  with ``_limit=1`` (what else Lime refuses shows then); overviews must name a group;
- ``changed_since_property`` (the daily creation's filter): on the person, and taken by Lime
  as a ``min-`` filter (``_limit=1``).

Nothing here writes.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from syncd.plugin import (
    NeedKind,
    RemoteError,
    SchemaNeeds,
    SchemaProblem,
    connection_key,
    missing,
    toml_key,
)
from syncd_lime.engagement import check_engagement

if TYPE_CHECKING:
    from syncd_lime.connector import LimeConnector

PREFIXES = ("min-", "max-", "not-")
SYSTEM = ("_id", "_timestamp", "_descriptive", "_createdtime", "_createduser", "_updateduser")
ADDON = "the Lime consent add-on (limepkg-consent)"


def group_filters(text: str) -> list[tuple[str, str]]:
    """A group's query string as (name, value) pairs (``_`` options are not filters)."""
    return [(k, v) for k, v in parse_qsl(str(text), keep_blank_values=True)]


def filter_property(name: str) -> str:
    return next((name[len(p):] for p in PREFIXES if name.startswith(p)), name)


class _Checker:
    def __init__(self, connector: LimeConnector, needs: SchemaNeeds):
        self.c = connector
        self.opts = connector.opts
        self.needs = needs
        self.names = connector.client.limetypes()
        self.docs: dict[str, dict[str, dict[str, Any]] | None] = {}
        self.problems: list[SchemaProblem] = []

    def key(self, *parts: str) -> str:
        return connection_key(self.c.name, *parts)

    def props(self, option: str, *, addon: bool = False) -> dict[str, dict[str, Any]] | None:
        """The properties of the limetype an option names, or None (a problem added)."""
        name = self.opts[option]
        if name not in self.docs:
            self.docs[name] = self.c.client.limetype(name) if name in self.names else None
        if self.docs[name] is None:
            if addon:
                self.problems.append(missing(
                    self.key(option), f"Lime has no limetype {name!r}: {ADDON} is not "
                    f"installed on this Lime instance (or names it differently), and the "
                    f"consent mappings need it", name, self.names,
                    fix="install the consent add-on in Lime, or remove the consent mappings"))
            else:
                self.problems.append(missing(self.key(option), f"Lime has no limetype "
                                             f"{name!r}", name, self.names))
        return self.docs[name]

    def prop(self, props: dict[str, dict[str, Any]], name: str, key: str, owner: str,
             what: str = "property", relation_to: str | None = None) -> bool:
        if name not in props:
            self.problems.append(missing(key, f"{owner} has no {what} {name!r}", name, props))
            return False
        if relation_to is not None:
            target = (props[name].get("relation") or {}).get("limetype")
            if target is not None and target != relation_to:
                self.problems.append(SchemaProblem(
                    key, f"{owner}.{name} leads to {target!r}, not to {relation_to!r}"))
                return False
        return True

    def fields(self, person: dict[str, dict[str, Any]]) -> None:
        rel = self.opts["company_relation"]
        paths = self.needs.of(NeedKind.FIELD)
        company = None
        if any(n.name.startswith(rel + ".") for n in paths):
            if self.prop(person, rel, self.key("company_relation"), self.opts["person_limetype"],
                         "relation", self.opts["company_limetype"]):
                company = self.props("company_limetype")
        for need in paths:
            what = "condition on" if ".conditions." in need.key else "field"
            if need.name.startswith(rel + "."):
                if company is None:
                    continue
                leaf = need.name[len(rel) + 1:]
                if leaf not in company and leaf not in SYSTEM:
                    self.problems.append(missing(
                        need.key, f"{what} {need.name!r}: {self.opts['company_limetype']} has "
                        f"no property {leaf!r}", leaf, company,
                        suggest=lambda s: f"{rel}.{s}"))
            elif need.name not in person and need.name not in SYSTEM:
                self.problems.append(missing(
                    need.key, f"{what} {need.name!r}: {self.opts['person_limetype']} has no "
                    f"property {need.name!r}", need.name,
                    list(person) + [f"{rel}.{p}" for p in (self.docs.get(
                        self.opts["company_limetype"]) or {})]))

    def consents(self) -> None:
        labels = self.needs.of(NeedKind.LABEL)
        if not labels:
            return
        consent = self.props("consent_limetype", addon=True)
        ctype = self.props("consenttype_limetype", addon=True)
        if consent is None or ctype is None:
            return
        owner = self.opts["consent_limetype"]
        for option in ("consent_approved_property", "consent_date_property"):
            self.prop(consent, self.opts[option], self.key(option), owner)
        self.prop(consent, self.opts["consent_person_relation"],
                  self.key("consent_person_relation"), owner, "relation",
                  self.opts["person_limetype"])
        ok = self.prop(consent, self.opts["consent_type_relation"],
                       self.key("consent_type_relation"), owner, "relation",
                       self.opts["consenttype_limetype"])
        if self.opts["consent_source"]:
            self.prop(consent, self.opts["consent_source_property"],
                      self.key("consent_source_property"), owner)
        if not ok or not self.prop(ctype, self.opts["consenttype_title_property"],
                                   self.key("consenttype_title_property"),
                                   self.opts["consenttype_limetype"]):
            return
        titles = list(self.c.consent_types(refresh=True).values())
        folded = {t.casefold() for t in titles}
        for need in labels:
            if need.name not in titles and need.name.casefold() not in folded:
                self.problems.append(missing(need.key, f"Lime has no consent type "
                                             f"{need.name!r}", need.name, titles,
                                             fix="create the consent type in Lime"))

    def groups(self, person: dict[str, dict[str, Any]]) -> None:
        groups = self.opts.get("groups") or {}
        for need in self.needs.of(NeedKind.GROUP):
            if need.name not in groups:
                found = missing(need.key, f"{need.name!r} is no group of {self.key('groups')} (its "
                                f"groups: {', '.join(sorted(groups)) or 'none'})", need.name,
                                groups, fix=f"add it to {self.key('groups')} as a Lime filter "
                                "on persons")
                self.problems.append(dataclasses.replace(found, have=()))
        for name, text in groups.items():
            key = self.key("groups", toml_key(name))
            before = len(self.problems)
            for param, _ in group_filters(text):
                prop = filter_property(param)
                if prop.startswith("_") and prop not in SYSTEM:
                    self.problems.append(SchemaProblem(key, f"{param!r} is not a filter (only "
                                                       "property filters are allowed here)"))
                elif prop not in person and prop not in SYSTEM:
                    self.problems.append(missing(key, f"the filter {param!r}: "
                                                 f"{self.opts['person_limetype']} has no "
                                                 f"property {prop!r}", prop, person))
            if len(self.problems) > before:
                continue
            try:
                self.c.client.list(self.opts["person_limetype"], limit=1,
                                   filters=group_filters(text))
            except RemoteError as exc:
                if exc.status is None or exc.status >= 500 or exc.status in (401, 403, 429):
                    raise
                self.problems.append(SchemaProblem(key, f"Lime refuses the filter: {exc}"))


def changed_since(c: _Checker, person: dict[str, dict[str, Any]]) -> None:
    """Daily creation filters persons with ``min-<changed_since_property>``: the property
    must exist and Lime must take the filter (on a system field it is an INFER)."""
    prop = c.opts["changed_since_property"]
    key = c.key("changed_since_property")
    if prop not in person and prop not in SYSTEM:
        c.problems.append(missing(key, f"{c.opts['person_limetype']} has no property "
                                  f"{prop!r}", prop, [*person, "_timestamp", "_createdtime"]))
        return
    try:
        c.c.client.list(c.opts["person_limetype"], limit=1,
                        filters=[(f"min-{prop}", "2000-01-01T00:00:00Z")])
    except RemoteError as exc:
        if exc.status is None or exc.status >= 500 or exc.status in (401, 403, 429):
            raise
        c.problems.append(SchemaProblem(
            key, f"Lime refuses the daily creation's filter min-{prop}: {exc}",
            fix="set changed_since_property to a time property of persons that Lime filters "
                "on (e.g. a \"last changed\" property)"))


def check(connector: LimeConnector, needs: SchemaNeeds) -> list[SchemaProblem]:
    """The connector's ``check_schema``: see the module's docstring."""
    c = _Checker(connector, needs)
    person = c.props("person_limetype")
    if person is None:
        return c.problems
    c.prop(person, connector.opts["email_property"], c.key("email_property"),
           connector.opts["person_limetype"])
    c.fields(person)
    changed_since(c, person)
    c.consents()
    c.groups(person)
    check_engagement(c)  # response data and tasks: syncd_lime.engagement
    return c.problems
