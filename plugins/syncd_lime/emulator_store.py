"""The Lime emulator's data: limetypes (their properties), limeobjects, and list queries.

Limetypes (apis.md 2.2, 2.4, 2.6): ``person``, ``company``, ``coworker``, and the consent
add-on's ``consent`` (``approved``, ``date``, ``note``, ``source``, ``consenttype``,
``person``) and ``consenttype`` (``title``, ``description``, ``active``, ``default``,
``readonly``). Belongs-to relations hold a plain integer id (or None); has-many relations
hold no value (only a link). System fields: ``_id``, ``_timestamp``, ``_descriptive``,
``_createdtime``, ``_createduser``, ``_updateduser``.

Queries (2.2 [CODE]): ``_limit``, ``_offset``, ``_sort`` (comma-separated, ``-`` for
descending [INFER]), and filters ``prop=v``, ``min-prop=v``, ``max-prop=v`` (inclusive),
``not-prop=v`` on any property or system field. A name the limetype lacks is a 400.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

BELONGS = "belongsto"
HASMANY = "hasmany"

#: limetype -> property -> type ("string", "text", "yesno", "time", "option", "integer")
#: or (BELONGS|HASMANY, target limetype).
LIMETYPES: dict[str, dict[str, Any]] = {
    "person": {"firstname": "string", "lastname": "string", "email": "string",
               "phone": "string", "mobilephone": "string", "position": "string",
               "customertype": "option", "company": (BELONGS, "company"),
               "consent": (HASMANY, "consent")},
    "company": {"name": "string", "phone": "string", "orgnumber": "string", "city": "string",
                "person": (HASMANY, "person")},
    "coworker": {"firstname": "string", "lastname": "string", "email": "string",
                 "username": "string"},
    "consent": {"approved": "yesno", "date": "time", "note": "text", "source": "option",
                "consenttype": (BELONGS, "consenttype"), "person": (BELONGS, "person")},
    "consenttype": {"title": "string", "description": "text", "active": "yesno",
                    "default": "yesno", "readonly": "yesno",
                    "consent": (HASMANY, "consent")},
    # response data and tasks: a history and a todo limetype as Lime apps usually have
    # (their properties are app-specific, apis.md 2.2 [INFER]); ``externalid`` is invented
    # (Lime documents no external id): syncd's option external_id_property names it
    "history": {"note": "text", "date": "time", "type": "option", "externalid": "string",
                "person": (BELONGS, "person"), "coworker": (BELONGS, "coworker")},
    "todo": {"subject": "string", "description": "text", "duedate": "time",
             "externalid": "string", "person": (BELONGS, "person"),
             "coworker": (BELONGS, "coworker")},
}
CONSENT_ADDON = ("consent", "consenttype")
SYSTEM = ("_id", "_timestamp", "_descriptive", "_createdtime", "_createduser", "_updateduser")
PREFIXES = ("min-", "max-", "not-")
QUERY_OPTIONS = ("_limit", "_offset", "_sort")


class QueryError(Exception):
    """A 400: the query names something the limetype does not have."""


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def _descriptive(limetype: str, obj: dict[str, Any]) -> str:
    if limetype == "person" or limetype == "coworker":
        return f"{obj.get('firstname') or ''} {obj.get('lastname') or ''}".strip()
    return str(obj.get("name") or obj.get("title") or f"{limetype} {obj['_id']}")


def _key(value: Any, kind: Any) -> Any:
    """A comparable form of a stored value or a query string of property type ``kind``."""
    if value is None or value == "":
        return None
    if isinstance(kind, tuple) or kind in ("integer", "_id"):
        try:
            return int(value)
        except (TypeError, ValueError):
            return str(value)
    if kind == "time":
        try:
            when = dt.datetime.fromisoformat(str(value))
        except ValueError:
            raise QueryError(f"{value!r} is not a time") from None
        return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    if kind == "yesno":
        if isinstance(value, bool):
            return value
        return str(value).lower() in ("1", "true", "yes")
    return str(value)


class Store:
    def __init__(self, limetypes: dict[str, dict[str, Any]] | None = None):
        self.limetypes = {k: dict(v) for k, v in (limetypes or LIMETYPES).items()}
        self.objects: dict[str, dict[int, dict[str, Any]]] = {t: {} for t in self.limetypes}
        self.trash: dict[str, dict[int, dict[str, Any]]] = {t: {} for t in self.limetypes}
        self._ids = {t: itertools.count(1001) for t in self.limetypes}
        #: False: a filter on a system field (``_id``, ``_timestamp`` ...) is a 400
        self.system_filters = True
        #: False: ``min-``/``max-`` on a relation (``min-person=``) is a 400
        self.relation_ranges = True

    # -- model -------------------------------------------------------------------------------

    def drop_limetypes(self, names: tuple[str, ...]) -> None:
        """An instance without these limetypes (e.g. the consent add-on not installed)."""
        for name in names:
            self.limetypes.pop(name, None)
            self.objects.pop(name, None)
            self.trash.pop(name, None)
        for props in self.limetypes.values():
            for prop, kind in list(props.items()):
                if isinstance(kind, tuple) and kind[1] in names:
                    del props[prop]

    def kind(self, limetype: str, prop: str) -> Any:
        if prop in SYSTEM:
            if prop in ("_timestamp", "_createdtime"):
                return "time"
            return "_id" if prop in ("_id", "_createduser", "_updateduser") else "string"
        try:
            return self.limetypes[limetype][prop]
        except KeyError:
            raise QueryError(f"limetype {limetype!r} has no property {prop!r}") from None

    def values_props(self, limetype: str) -> list[str]:
        return [p for p, k in self.limetypes[limetype].items()
                if not (isinstance(k, tuple) and k[0] == HASMANY)]

    # -- writes ------------------------------------------------------------------------------

    def check_body(self, limetype: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise QueryError("the body must be a JSON object of property values")
        out = {}
        for prop, value in body.items():
            if prop.startswith("_"):
                continue  # system fields are read-only
            kind = self.kind(limetype, prop)
            if isinstance(kind, tuple):
                if kind[0] == HASMANY:
                    raise QueryError(f"{prop!r} is a has-many relation: set it from the "
                                     f"{kind[1]} side")
                if value is not None:
                    try:
                        value = int(value)
                    except (TypeError, ValueError):
                        raise QueryError(f"{prop!r} takes the id of a {kind[1]}") from None
                    if value not in self.objects.get(kind[1], {}):
                        raise QueryError(f"no {kind[1]} with id {value}")
            elif kind == "yesno" and value is not None and not isinstance(value, bool):
                raise QueryError(f"{prop!r} is yes/no: true or false")
            out[prop] = value
        return out

    def create(self, limetype: str, values: dict[str, Any]) -> dict[str, Any]:
        stamp = now_iso()
        obj: dict[str, Any] = dict.fromkeys(self.values_props(limetype))
        obj.update(values)
        obj.update({"_id": next(self._ids[limetype]), "_timestamp": stamp,
                    "_createdtime": stamp, "_createduser": 1, "_updateduser": 1})
        self.objects[limetype][obj["_id"]] = obj
        return obj

    def update(self, limetype: str, oid: int, values: dict[str, Any]) -> dict[str, Any]:
        """The values the update changed, as they were before it (``original_values``)."""
        obj = self.objects[limetype][oid]
        original = {k: obj.get(k) for k, v in values.items() if obj.get(k) != v}
        obj.update(values)
        obj["_timestamp"] = now_iso()
        return original

    def delete(self, limetype: str, oid: int) -> dict[str, Any]:
        obj = self.objects[limetype].pop(oid)
        self.trash[limetype][oid] = obj
        return obj

    def restore(self, limetype: str, oid: int) -> dict[str, Any]:
        obj = self.trash[limetype].pop(oid)
        obj["_timestamp"] = now_iso()
        self.objects[limetype][oid] = obj
        return obj

    # -- reads -------------------------------------------------------------------------------

    def query(self, limetype: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """The objects that match the filters, sorted (paging is the caller's)."""
        seen: set[str] = set()
        tests = []
        sort = "_id"
        for name, value in params:
            if name in ("_limit", "_offset"):
                continue
            if name == "_sort":
                sort = value
                continue
            if name.startswith("_") and name not in SYSTEM:
                raise QueryError(f"unknown query option {name!r}")
            if name.startswith("_") and not self.system_filters:
                raise QueryError(f"cannot filter on the system field {name!r}")
            if name in seen:
                raise QueryError(f"the filter {name!r} is given twice")
            seen.add(name)
            prefix = next((p for p in PREFIXES if name.startswith(p)), "")
            prop = name[len(prefix):]
            if prop.startswith("_") and not self.system_filters:
                raise QueryError(f"cannot filter on the system field {prop!r}")
            if prefix in ("min-", "max-") and isinstance(self.limetypes[limetype].get(prop),
                                                         tuple) and not self.relation_ranges:
                raise QueryError(f"{prefix} is not supported on the relation {prop!r}")
            kind = self.kind(limetype, prop)
            if isinstance(kind, tuple) and kind[0] == HASMANY:
                raise QueryError(f"cannot filter on the has-many relation {prop!r}")
            tests.append((prefix, prop, _key(value, kind), kind))
        rows = [o for o in self.objects[limetype].values() if all(
            _test(prefix, _key(o.get(prop), kind), want) for prefix, prop, want, kind in tests)]
        for part in reversed([s for s in sort.split(",") if s]):
            desc = part.startswith("-")
            prop = part.lstrip("-")
            kind = self.kind(limetype, prop)

            def by_prop(o: dict[str, Any], p: str = prop, k: Any = kind) -> tuple:
                return _sort_key(_key(o.get(p), k))

            rows.sort(key=by_prop, reverse=desc)
        return rows

    def render(self, limetype: str, obj: dict[str, Any], base: str) -> dict[str, Any]:
        out = {k: obj.get(k) for k in SYSTEM if k != "_descriptive"}
        out["_descriptive"] = _descriptive(limetype, obj)
        links: dict[str, Any] = {
            "self": {"href": f"{base}/api/v1/limeobject/{limetype}/{obj['_id']}/"},
            "limetype": {"href": f"{base}/api/v1/limetype/{limetype}/", "name": limetype}}
        for prop, kind in self.limetypes[limetype].items():
            if isinstance(kind, tuple):
                links[f"relation_{prop}"] = {
                    "href": f"{base}/api/v1/limeobject/{limetype}/{obj['_id']}/{prop}/",
                    "name": prop}
                if kind[0] == HASMANY:
                    continue
            out[prop] = obj.get(prop)
        out["_links"] = links
        return out

    def hook_values(self, limetype: str, obj: dict[str, Any]) -> dict[str, Any]:
        """A webhook body's ``values``: every property, plus ``id``, ``createdtime``,
        ``timestamp`` (apis.md 2.3)."""
        values = {p: obj.get(p) for p in self.values_props(limetype)}
        values.update({"id": obj["_id"], "createdtime": obj["_createdtime"],
                       "timestamp": obj["_timestamp"]})
        return values

    def limetype_doc(self, name: str, base: str, shape: str) -> dict[str, Any]:
        props = []
        for prop, kind in self.limetypes[name].items():
            entry: dict[str, Any] = {"name": prop, "localname": prop.title()}
            if isinstance(kind, tuple):
                entry.update({"type": kind[0], "relation": {"limetype": kind[1]}})
            else:
                entry["type"] = kind
            props.append(entry)
        doc: dict[str, Any] = {"name": name, "localname": {"singular": name.title(),
                                                           "plural": name.title() + "s"},
                               "_links": {"self": {"href": f"{base}/api/v1/limetype/{name}/"}}}
        if shape == "list":
            doc["properties"] = props
        else:
            doc["properties"] = {p.pop("name"): p for p in props}
        return doc


def _sort_key(value: Any) -> tuple:
    if value is None:
        return (1, 0, "")
    if isinstance(value, dt.datetime):
        return (0, value.timestamp(), "")
    if isinstance(value, bool | int | float):
        return (0, float(value), "")
    return (0, 0, str(value))


def _test(prefix: str, have: Any, want: Any) -> bool:
    if prefix == "not-":
        return have != want
    if prefix in ("min-", "max-"):
        if have is None or want is None:
            return False
        try:
            return have >= want if prefix == "min-" else have <= want
        except TypeError:
            return False
    return have == want
