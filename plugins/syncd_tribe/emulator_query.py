"""The Tribe emulator's reads (:class:`Queries`, mixed into the emulator): what one emulated
account has, the checks a real OData server makes of a query's ``$select`` and ``$expand``
before it runs it, and the paging switches (see :mod:`syncd_tribe.emulator`).

An account's model is :data:`~syncd_tribe.emulator_store.SETS` less the label navigations it
lacks (``label_navs``: the person-label navigation names are a GAP in apis.md 1.4, so an
account may have ``Labels``, ``LabelAssignments``, both or neither). Like an OData v4 server
(Apache Olingo, apis.md 1.0), a property in ``$select`` or a navigation in ``$expand`` that the
entity type lacks is a 400 — always, also when no row matches (the query is checked, not the
rows).
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import parse_qsl, urlencode

from syncd.plugin import HTTPError, Request
from syncd_tribe import odata
from syncd_tribe.emulator_model import account_fields
from syncd_tribe.emulator_store import (
    FIELDS,
    LABEL_LINKS_NAV,
    LABELLED,
    LABELS_NAV,
    SETS,
    STANDARD,
    Store,
    concrete_sets,
)
from syncd_tribe.odata import ODataError

ODATA = "/v1/odata"
#: The label navigations an account may have.
LABEL_NAVS = (LABELS_NAV, LABEL_LINKS_NAV)

Model = dict[str, tuple[str, dict[str, tuple[str, bool]]]]


def account_model(label_navs) -> Model:
    """:data:`SETS` with only the label navigations in ``label_navs``."""
    keep = set(label_navs)
    unknown = keep - set(LABEL_NAVS)
    if unknown:
        raise ValueError(f"label_navs: unknown navigation(s) {sorted(unknown)}; choose from "
                         f"{list(LABEL_NAVS)}")
    return {name: (type_, {nav: target for nav, target in navs.items()
                           if name not in LABELLED or nav not in LABEL_NAVS or nav in keep})
            for name, (type_, navs) in SETS.items()}


def _navs(model: Model, set_name: str) -> dict[str, tuple[str, bool]]:
    out: dict[str, tuple[str, bool]] = {}
    for concrete in concrete_sets(set_name):
        out.update(model[concrete][1])
    return out


def _properties(set_name: str, fields: dict[str, tuple[str, ...]]) -> set[str]:
    out = set(STANDARD)
    for concrete in concrete_sets(set_name):
        out.update(fields[concrete])
    return out


def _type(model: Model, set_name: str) -> str:
    return model[set_name][0] if set_name in model else set_name


def check_projection(model: Model, set_name: str, select: list[str] | None,
                     expand: dict[str, dict[str, Any]],
                     fields: dict[str, tuple[str, ...]] = FIELDS) -> None:
    """400 (:class:`ODataError`) for a ``$select`` property or an ``$expand`` navigation
    that ``set_name`` lacks in ``model``, at any depth."""
    navs = _navs(model, set_name)
    known = _properties(set_name, fields) | set(navs)
    for name in select or ():
        if name not in known:
            raise ODataError(f"Could not find a property named '{name}' on type "
                             f"'{_type(model, set_name)}'")
    for nav, options in expand.items():
        if nav not in navs:
            raise ODataError(f"Could not find a navigation property named '{nav}' on type "
                             f"'{_type(model, set_name)}'")
        check_projection(model, navs[nav][0], options.get("select"),
                         options.get("expand") or {}, fields)


def split_segment(segment: str) -> tuple[str, str | None]:
    """``Relation_Person(guid)`` -> ``("Relation_Person", "guid")``; a set alone: key None."""
    if segment.endswith(")") and "(" in segment:
        name, _, key = segment[:-1].partition("(")
        key = key.strip()
        if key.startswith("ID="):
            key = key[3:]
        return name, key.strip("'")
    return segment, None


class Queries:
    """Mixed into :class:`~syncd_tribe.emulator.TribeEmulator` (which provides ``store``,
    ``lock``, ``url`` and the paging switches)."""

    store: Store
    lock: threading.RLock
    url: str
    server_paging: int | None
    next_links: bool
    ignore_skip: bool
    result_window: int | None
    #: collection GETs per entity set, and how many of them answered an empty page
    list_requests: dict[str, int]
    empty_pages: dict[str, int]

    @property
    def label_navs(self) -> list[str]:
        return [n for n in LABEL_NAVS if n in self.store.model["Relation_Person"][1]]

    @label_navs.setter
    def label_navs(self, value) -> None:
        self.store.model = account_model(value or ())

    @property
    def person_former_field(self) -> str | None:
        extra = set(self.store.fields["Relation_Person"]) - set(FIELDS["Relation_Person"])
        return next(iter(extra), None)

    @person_former_field.setter
    def person_former_field(self, value: str | None) -> None:
        """Persons get the flag (False where not set) or lose it, and ``$metadata`` with
        them; a write of a property persons lack is a 400."""
        with self.lock:
            before = self.person_former_field
            self.store.fields = account_fields(value or None)
            for eid in self.store.ids_of("Relation_Person"):
                entity = self.store.entities[eid]
                flag = bool(entity.pop(before, False)) if before else False
                if value:
                    entity[value] = flag

    @property
    def omit_navs(self) -> list[str]:
        return sorted(self.store.omit_navs)

    @omit_navs.setter
    def omit_navs(self, value) -> None:
        self.store.omit_navs = set(value or ())

    def _get_one(self, set_name: str, key: str, request: Request):
        select = odata.parse_select(request.arg("$select"))
        expand = odata.parse_expand(request.arg("$expand"))
        check_projection(self.store.model, set_name, select, expand, self.store.fields)
        with self.lock:
            eid = self.store.find(set_name, key)
            if eid is None:
                raise HTTPError(404, {"error": f"No {set_name} with ID {key}"})
            out = self.store.render(eid, select, expand)
        return {"@odata.context": f"{self.url}{ODATA}/$metadata#{set_name}/$entity", **out}

    def _get_many(self, set_name: str, request: Request):
        args = request.query
        unknown = [k for k in args if k.startswith("$") and k not in (
            "$select", "$expand", "$filter", "$orderby", "$top", "$skip", "$count", "$format")]
        if unknown:
            raise ODataError(f"the query option {unknown[0]} is not supported")
        select = odata.parse_select(request.arg("$select"))
        expand = odata.parse_expand(request.arg("$expand"))
        check_projection(self.store.model, set_name, select, expand, self.store.fields)
        top = _int_arg(request, "$top")
        skip = 0 if self.ignore_skip else _int_arg(request, "$skip") or 0
        limit = top
        if self.server_paging and (limit is None or limit > self.server_paging):
            limit = int(self.server_paging)
        with self.lock:
            ids = self.store.query(set_name, request.arg("$filter"), request.arg("$orderby"))
            served = ids if self.result_window is None else ids[:int(self.result_window)]
            window = served[skip:skip + limit] if limit is not None else served[skip:]
            value = [self.store.render(eid, select, expand) for eid in window]
            self.list_requests[set_name] = self.list_requests.get(set_name, 0) + 1
            if not value:
                self.empty_pages[set_name] = self.empty_pages.get(set_name, 0) + 1
        out: dict[str, Any] = {"@odata.context": f"{self.url}{ODATA}/$metadata#{set_name}"}
        if (request.arg("$count") or "").lower() == "true":
            out["@odata.count"] = len(ids)
        out["value"] = value
        end = skip + len(window)
        wanted_end = len(served) if top is None else min(len(served), skip + top)
        if limit != top and end < wanted_end and self.next_links:
            params = [(k, v) for k, v in parse_qsl(request.query_string, keep_blank_values=True)
                      if k not in ("$skip", "$top")]
            params.append(("$skip", str(end)))
            if top is not None:
                params.append(("$top", str(top - (end - skip))))
            out["@odata.nextLink"] = f"{self.url}{request.path}?{urlencode(params)}"
        return out


def _int_arg(request: Request, name: str) -> int | None:
    value = request.arg(name)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise ODataError(f"{name} must be a non-negative integer") from None
    if number < 0:
        raise ODataError(f"{name} must be a non-negative integer")
    return number
