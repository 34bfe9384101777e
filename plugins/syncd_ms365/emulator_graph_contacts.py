"""The contacts of the Graph emulator (apis.md 4.2 - 4.3): ``GET``/``POST`` on ``.../contacts``
and ``GET``/``PATCH``/``DELETE`` on ``.../contacts/{id}`` for ``/v1.0/me`` and
``/v1.0/users/{id|upn}``, with ``$top``/``$skip`` pages, ``$select``, ``$expand`` of
extended properties and the two ``$filter`` forms Graph accepts there; the ``read_only``
(writes to those mailboxes are 403) and ``omit_fields`` (properties left out of every read)
switches of :class:`.emulator_graph.GraphEmulator` are applied here."""

from __future__ import annotations

import re
from typing import Any

from syncd.plugin import Request, Router
from syncd_ms365.emulator_graph_store import EXT, graph_error

ANY_EXT = re.compile(r"^singleValueExtendedProperties/any\(\s*(\w+)\s*:\s*\1/id eq '([^']*)'"
                     r"\s+and\s+\1/value eq '((?:[^']|'')*)'\s*\)$", re.I)
ANY_MAIL = re.compile(r"^emailAddresses/any\(\s*(\w+)\s*:\s*\1/address eq '((?:[^']|'')*)'"
                      r"\s*\)$", re.I)
EXPAND_EXT = re.compile(r"^singleValueExtendedProperties\(\$filter=(.*)\)$")


def add_routes(emu, router: Router, base: str) -> None:
    router.add("GET", base + "/contacts", lambda r: list_contacts(emu, r))
    router.add("POST", base + "/contacts", lambda r: create(emu, r))
    router.add("GET", base + "/contacts/{cid}", lambda r: get(emu, r))
    router.add("PATCH", base + "/contacts/{cid}", lambda r: update(emu, r))
    router.add("DELETE", base + "/contacts/{cid}", lambda r: delete(emu, r))


# -- switches and query options ------------------------------------------------------------

def expand_ids(request: Request) -> set[str] | None:
    expand = request.arg("$expand")
    if not expand:
        return None
    match = EXPAND_EXT.match(expand.strip())
    if not match:
        raise graph_error(400, "BadRequest", f"Could not find a property named "
                          f"'{expand}' to expand.")
    return set(re.findall(r"id eq '([^']*)'", match.group(1)))


def omit(emu, contact: dict[str, Any]) -> dict[str, Any]:
    if not emu.omit_fields:
        return contact
    return {k: v for k, v in contact.items() if k not in emu.omit_fields}


def writable(emu, oid: str) -> str:
    if emu.read_only and (oid in emu.read_only or any(
            emu.oid_of(u) == oid for u in emu.read_only)):
        raise graph_error(403, "ErrorAccessDenied", "Access is denied. Check "
                          "credentials and try again.")
    return oid


def select(emu, request: Request, contact: dict[str, Any]) -> dict[str, Any]:
    fields = request.arg("$select")
    contact = omit(emu, contact)
    if not fields:
        return contact
    keep = {s.strip() for s in fields.split(",")} | {"id", "@odata.etag", EXT, "@removed"}
    return {k: v for k, v in contact.items() if k in keep}


def matches(request: Request):
    text = (request.arg("$filter") or "").strip()
    if not text:
        return lambda c: True
    ext = ANY_EXT.match(text)
    if ext:
        pid, value = ext.group(2), ext.group(3).replace("''", "'").lower()
        return lambda c: str(c.get("_ext", {}).get(pid, "")).lower() == value
    mail = ANY_MAIL.match(text)
    if mail:
        address = mail.group(2).replace("''", "'").lower()
        return lambda c: any((e.get("address") or "").lower() == address
                             for e in c.get("emailAddresses") or [])
    raise graph_error(400, "ErrorInvalidUrlQueryFilter", "The query filter contains one "
                      "or more invalid nodes.")


# -- handlers ------------------------------------------------------------------------------

def list_contacts(emu, request: Request):
    def work(oid):
        top = int(request.arg("$top") or 10)
        skip = int(request.arg("$skip") or 0)
        if not 0 < top <= 1000:
            raise graph_error(400, "ErrorInvalidArgument", "$top must be 1..1000.")
        keep, expand = matches(request), expand_ids(request)
        with emu.store.lock:
            rows = [c for c in emu.store.mailbox(oid).contacts.values() if keep(c)]
        page = rows[skip:skip + top]
        body: dict[str, Any] = {"value": [
            select(emu, request, emu.store.public(c, expand)) for c in page]}
        if skip + top < len(rows):
            query = request.query_string
            query = re.sub(r"(^|&)\$skip=\d+", "", query).lstrip("&")
            body["@odata.nextLink"] = (f"{emu.url}{request.path}?{query}"
                                       f"{'&' if query else ''}$skip={skip + top}")
        return body
    return emu._run(request, work)


def create(emu, request: Request):
    return emu._run(request, lambda oid: (201, emu.store.create(
        writable(emu, oid), request.json(), merge_on_email=emu.merge_on_email)))


def get(emu, request: Request):
    def work(oid):
        contact = emu.store.get(oid, request.params["cid"])
        return select(emu, request, emu.store.public(contact, expand_ids(request)))
    return emu._run(request, work)


def update(emu, request: Request):
    return emu._run(request, lambda oid: emu.store.update(
        writable(emu, oid), request.params["cid"], request.json()))


def delete(emu, request: Request):
    def work(oid: str) -> tuple[int, None]:
        emu.store.delete(writable(emu, oid), request.params["cid"])
        return 204, None

    return emu._run(request, work)
