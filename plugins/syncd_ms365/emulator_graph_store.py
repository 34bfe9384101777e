"""The mailboxes of the Graph emulator: contacts, their extended properties, and the change
log that delta queries and change notifications are served from (apis.md 4.2 - 4.4)."""

from __future__ import annotations

import base64
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from syncd.plugin import HTTPError

#: Writable contact properties (apis.md 4.2 [DOC contact.md]); anything else is a 400.
STRING_PROPS = {
    "displayName", "givenName", "middleName", "surname", "initials", "title", "generation",
    "nickName", "fileAs", "mobilePhone", "jobTitle", "companyName", "department",
    "officeLocation", "profession", "manager", "assistantName", "spouseName",
    "businessHomePage", "personalNotes", "yomiGivenName", "yomiSurname", "yomiCompanyName",
    "birthday",
}
LIST_PROPS = {"businessPhones", "homePhones", "children", "imAddresses", "categories"}
ADDRESS_PROPS = {"businessAddress", "homeAddress", "otherAddress"}
READ_ONLY = {"id", "changeKey", "createdDateTime", "lastModifiedDateTime", "parentFolderId"}
EXT = "singleValueExtendedProperties"
EXT_ID = re.compile(r"^String \{[0-9a-fA-F-]{36}\} Name \S+$")
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def graph_error(status: int, code: str, message: str) -> HTTPError:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return HTTPError(status, {"error": {"code": code, "message": message, "innerError": {
        "date": now, "request-id": secrets.token_hex(8), "client-request-id": ""}}})


def iso_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _new_id(prefix: str) -> str:
    return prefix + base64.urlsafe_b64encode(secrets.token_bytes(24)).decode().rstrip("=")


def validate_contact(body: Any) -> None:
    """400 for what Graph refuses on a contact body (unknown or read-only properties, wrong
    types, a malformed extended property id)."""
    if not isinstance(body, dict):
        raise graph_error(400, "RequestBodyRead", "The body must be a JSON object.")
    for key, value in body.items():
        if key.startswith("@odata"):
            continue
        if key in READ_ONLY:
            raise graph_error(400, "ErrorInvalidProperty", f"Property '{key}' is read-only.")
        if key in STRING_PROPS:
            if value is not None and not isinstance(value, str):
                raise graph_error(400, "RequestBodyRead", f"'{key}' must be a string.")
            if key == "birthday" and value and not ISO_UTC.match(value):
                raise graph_error(400, "RequestBodyRead",
                                  "Cannot convert the literal to Edm.DateTimeOffset.")
        elif key in LIST_PROPS:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise graph_error(400, "RequestBodyRead", f"'{key}' must be a string array.")
        elif key == "emailAddresses":
            if not isinstance(value, list) or not all(
                    isinstance(v, dict) and set(v) <= {"name", "address"} for v in value):
                raise graph_error(400, "RequestBodyRead", "'emailAddresses' must be an "
                                  "array of emailAddress {name, address}.")
        elif key in ADDRESS_PROPS:
            if not isinstance(value, dict):
                raise graph_error(400, "RequestBodyRead", f"'{key}' must be an object.")
        elif key == EXT:
            if not isinstance(value, list):
                raise graph_error(400, "RequestBodyRead", f"'{EXT}' must be an array.")
            for prop in value:
                if not isinstance(prop, dict) or not EXT_ID.match(str(prop.get("id", ""))) \
                        or not isinstance(prop.get("value"), str):
                    raise graph_error(400, "ErrorInvalidExtendedPropertyValue",
                                      "An extended property needs an id 'String {guid} Name "
                                      "X' and a string value.")
        else:
            raise graph_error(400, "RequestBodyRead", f"Property '{key}' does not exist on "
                              "type 'microsoft.graph.contact'.")


@dataclass
class Mailbox:
    oid: str
    folder_id: str = field(default_factory=lambda: _new_id("AAMkADcontacts"))
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: change log: (sequence, contact id, "created" | "updated" | "deleted")
    log: list[tuple[int, str, str]] = field(default_factory=list)


class GraphStore:
    def __init__(self):
        self.lock = threading.RLock()
        self.mailboxes: dict[str, Mailbox] = {}
        self.seq = 0
        #: called with (mailbox oid, contact id, change type) after each change
        self.listeners: list = []

    def mailbox(self, oid: str) -> Mailbox:
        with self.lock:
            box = self.mailboxes.get(oid)
            if box is None:
                box = self.mailboxes[oid] = Mailbox(oid)
            return box

    def _changed(self, box: Mailbox, cid: str, change: str) -> None:
        self.seq += 1
        box.log.append((self.seq, cid, change))
        for listener in list(self.listeners):
            listener(box.oid, cid, change)

    @staticmethod
    def _touch(contact: dict[str, Any]) -> None:
        contact["changeKey"] = base64.b64encode(secrets.token_bytes(12)).decode()
        contact["lastModifiedDateTime"] = iso_now()

    @staticmethod
    def _display(contact: dict[str, Any]) -> str:
        parts = (contact.get("givenName"), contact.get("middleName"), contact.get("surname"))
        return " ".join(p for p in parts if p)

    def _apply(self, contact: dict[str, Any], body: dict[str, Any]) -> None:
        for key, value in body.items():
            if key.startswith("@odata"):
                continue
            if key == EXT:
                ext = contact.setdefault("_ext", {})
                for prop in value:
                    ext[prop["id"]] = prop["value"]
            else:
                contact[key] = value
        if "displayName" not in body and not contact.get("_display_set"):
            contact["displayName"] = self._display(contact)
        elif "displayName" in body:
            contact["_display_set"] = True

    def create(self, oid: str, body: dict[str, Any], merge_on_email: bool = False
               ) -> dict[str, Any]:
        validate_contact(body)
        with self.lock:
            box = self.mailbox(oid)
            now = iso_now()
            contact: dict[str, Any] = {
                "id": _new_id("AAMkADcontact"), "createdDateTime": now,
                "parentFolderId": box.folder_id, "emailAddresses": [], "businessPhones": [],
                "homePhones": [], "categories": [], "children": [], "imAddresses": []}
            for key in ("displayName", "givenName", "middleName", "surname", "initials",
                        "mobilePhone", "jobTitle", "birthday"):
                contact[key] = None
            self._apply(contact, body)
            self._touch(contact)
            box.contacts[contact["id"]] = contact
            self._changed(box, contact["id"], "created")
            created = self.public(contact)  # the answer: the card as created
            if merge_on_email:
                self._outlook_merge(box, contact)
            return created

    def _outlook_merge(self, box: Mailbox, new: dict[str, Any]) -> None:
        """Seed 002, chapter 3: Outlook fills a new card's empty fields from an existing card
        that shares an e-mail address, and that is a change of the new contact."""
        addresses = {e.get("address", "").lower() for e in new.get("emailAddresses") or []}
        for other in box.contacts.values():
            if other is new or not addresses & {
                    e.get("address", "").lower() for e in other.get("emailAddresses") or []}:
                continue
            filled = False
            for key in STRING_PROPS | LIST_PROPS:
                if key not in ("displayName",) and not new.get(key) and other.get(key):
                    new[key] = other[key]
                    filled = True
            if filled:
                new["displayName"] = self._display(new)
                self._touch(new)
                self._changed(box, new["id"], "updated")
            return

    def update(self, oid: str, cid: str, body: dict[str, Any]) -> dict[str, Any]:
        validate_contact(body)
        with self.lock:
            box = self.mailbox(oid)
            contact = box.contacts.get(cid)
            if contact is None:
                raise graph_error(404, "ErrorItemNotFound", "The specified object was not "
                                  "found in the store.")
            self._apply(contact, body)
            self._touch(contact)
            self._changed(box, cid, "updated")
            return self.public(contact)

    def delete(self, oid: str, cid: str) -> None:
        with self.lock:
            box = self.mailbox(oid)
            if box.contacts.pop(cid, None) is None:
                raise graph_error(404, "ErrorItemNotFound", "The specified object was not "
                                  "found in the store.")
            self._changed(box, cid, "deleted")

    def get(self, oid: str, cid: str) -> dict[str, Any]:
        with self.lock:
            contact = self.mailbox(oid).contacts.get(cid)
            if contact is None:
                raise graph_error(404, "ErrorItemNotFound", "The specified object was not "
                                  "found in the store.")
            return dict(contact)

    @staticmethod
    def public(contact: dict[str, Any], expand_ids: set[str] | None = None
               ) -> dict[str, Any]:
        """The contact as Graph answers it; extended properties only when expanded (with
        the ids the ``$filter`` of the expansion names)."""
        out = {k: v for k, v in contact.items() if not k.startswith("_")}
        out["@odata.etag"] = f'W/"{contact.get("changeKey", "")}"'
        if expand_ids is not None:
            ext = contact.get("_ext", {})
            out[EXT] = [{"id": k, "value": v} for k, v in ext.items() if k in expand_ids]
        return out

    def now(self) -> float:
        return time.time()
