"""One user's Outlook contacts as the link sees them: the fields of seed 002 by their
neutral names, the connector id in a single-value extended property (apis.md 4.3), delta
rounds and change-notification subscriptions."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from syncd.plugin import RemoteError
from syncd_ms365.graph import GraphClient

#: The contact fields the link syncs (seed 002, chapter 2), by neutral name.
FIELDS = ("initials", "givenName", "middleName", "surname", "birthday", "email", "jobTitle",
          "workPhone", "mobile", "homePhone")
_PLAIN = ("initials", "givenName", "middleName", "surname", "jobTitle")
#: apis.md 4.2 [INFER]: a date is stored at a fixed UTC time and compared on its date part.
BIRTHDAY_TIME = "T11:59:00Z"


def from_outlook(contact: dict[str, Any]) -> dict[str, Any]:
    """The neutral fields of a Graph contact; of several e-mail addresses or phone numbers
    only the first counts (seed 002). A property the answer does not carry is left out:
    unknown, never empty (:func:`syncd.engine.twoway.decide` writes nothing for it)."""
    out: dict[str, Any] = {k: contact.get(k) or None for k in _PLAIN if k in contact}
    if "emailAddresses" in contact:
        emails = contact.get("emailAddresses") or []
        out["email"] = (emails[0].get("address") or None) if emails else None
    if "businessPhones" in contact:
        out["workPhone"] = (contact.get("businessPhones") or [None])[0] or None
    if "homePhones" in contact:
        out["homePhone"] = (contact.get("homePhones") or [None])[0] or None
    if "mobilePhone" in contact:
        out["mobile"] = contact.get("mobilePhone") or None
    if "birthday" in contact:
        birthday = contact.get("birthday")
        out["birthday"] = birthday[:10] if birthday else None
    return out


def to_outlook(fields: dict[str, Any], current: dict[str, Any] | None = None
               ) -> dict[str, Any]:
    """A Graph body setting ``fields`` (neutral names); the first e-mail address or phone
    number is replaced and the others Outlook holds are kept."""
    current = current or {}
    body: dict[str, Any] = {}
    for key, value in fields.items():
        if key in _PLAIN:
            body[key] = value or None
        elif key == "mobile":
            body["mobilePhone"] = value or None
        elif key == "birthday":
            body["birthday"] = f"{str(value)[:10]}{BIRTHDAY_TIME}" if value else None
        elif key == "email":
            rest = (current.get("emailAddresses") or [])[1:]
            body["emailAddresses"] = ([{"address": value, "name": value}] if value else []) \
                + rest
        elif key in ("workPhone", "homePhone"):
            prop = "businessPhones" if key == "workPhone" else "homePhones"
            rest = (current.get(prop) or [])[1:]
            body[prop] = ([value] if value else []) + rest
    if any(k in fields for k in ("givenName", "middleName", "surname")):
        merged = {**{k: current.get(k) for k in ("givenName", "middleName", "surname")},
                  **{k: body[k] for k in ("givenName", "middleName", "surname") if k in body}}
        body["displayName"] = " ".join(v for v in merged.values() if v)
    return body


class Mailbox:
    def __init__(self, graph: GraphClient, property_id: str):
        self.graph = graph
        self.property_id = property_id

    @property
    def expand(self) -> str:
        return f"singleValueExtendedProperties($filter=id eq '{self.property_id}')"

    def connector_id(self, contact: dict[str, Any]) -> str | None:
        for prop in contact.get("singleValueExtendedProperties") or []:
            if prop.get("id") == self.property_id:
                return prop.get("value")
        return None

    def get(self, user: str, cid: str) -> dict[str, Any] | None:
        try:
            return self.graph.json(user, "GET", f"{self.graph.root(user)}/contacts/{cid}",
                                   params={"$expand": self.expand})
        except RemoteError as exc:
            if exc.status == 404:
                return None
            raise

    def find(self, user: str, connector_id: str) -> dict[str, Any] | None:
        """The contact carrying ``connector_id`` (after a crash between a create and its
        bookkeeping: never create a second one)."""
        value = connector_id.replace("'", "''")
        page = self.graph.json(user, "GET", f"{self.graph.root(user)}/contacts", params={
            "$filter": f"singleValueExtendedProperties/Any(ep: ep/id eq '{self.property_id}'"
                       f" and ep/value eq '{value}')", "$expand": self.expand, "$top": "10"})
        rows = page.get("value") or []
        return rows[0] if rows else None

    def linked(self, user: str) -> list[dict[str, Any]]:
        """Every contact of the mailbox that carries a connector id."""
        out, url = [], f"{self.graph.root(user)}/contacts"
        params: dict[str, str] | None = {"$expand": self.expand, "$top": "1000"}
        while url:
            page = self.graph.json(user, "GET", url, params=params)
            params = None
            out += [c for c in page.get("value") or [] if self.connector_id(c)]
            url = page.get("@odata.nextLink")
        return out

    def create_item(self, user: str, fields: dict[str, Any], connector_id: str
                    ) -> dict[str, Any]:
        body = to_outlook(fields)
        body["singleValueExtendedProperties"] = [{"id": self.property_id,
                                                  "value": connector_id}]
        return {"method": "POST", "url": f"{self.graph.root(user)}/contacts", "body": body}

    def update_item(self, user: str, cid: str, fields: dict[str, Any],
                    current: dict[str, Any] | None) -> dict[str, Any]:
        return {"method": "PATCH", "url": f"{self.graph.root(user)}/contacts/{cid}",
                "body": to_outlook(fields, current)}

    def write(self, user: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.graph.batch(user, items)

    def create(self, user: str, fields: dict[str, Any], connector_id: str) -> dict[str, Any]:
        item = self.create_item(user, fields, connector_id)
        return self.graph.json(user, "POST", item["url"], json=item["body"])

    def update(self, user: str, cid: str, fields: dict[str, Any],
               current: dict[str, Any] | None = None) -> dict[str, Any]:
        item = self.update_item(user, cid, fields, current)
        return self.graph.json(user, "PATCH", item["url"], json=item["body"])

    def drop_connector_id(self, user: str, cid: str) -> None:
        self.graph.json(user, "PATCH", f"{self.graph.root(user)}/contacts/{cid}", json={
            "singleValueExtendedProperties": [{"id": self.property_id, "value": ""}]})

    # -- change tracking -------------------------------------------------------------------

    def delta(self, user: str, link: str | None, folder: str | None
              ) -> tuple[list[dict[str, Any]], str | None]:
        """One delta round from ``link`` (None: from the start, in ``folder``); returns the
        rows and the next deltaLink. Raises :class:`~syncd_ms365.graph.DeltaExpired` on 410."""
        if link is None:
            if folder is None:
                return [], None
            url = f"{self.graph.root(user)}/contactFolders/{folder}/contacts/delta"
        else:
            url = link
        rows: list[dict[str, Any]] = []
        while True:
            page = self.graph.json(user, "GET", url,
                                   headers={"Prefer": "odata.maxpagesize=500"})
            rows += page.get("value") or []
            if "@odata.deltaLink" in page:
                return rows, page["@odata.deltaLink"]
            url = page["@odata.nextLink"]

    def subscribe(self, user: str, url: str, client_state: str, minutes: int
                  ) -> dict[str, Any]:
        resource = "me/contacts" if self.graph.root(user) == "/me" else \
            f"users/{user}/contacts"
        return self.graph.json(user, "POST", "/subscriptions", json={
            "changeType": "created,updated,deleted", "notificationUrl": url,
            "lifecycleNotificationUrl": url, "resource": resource,
            "expirationDateTime": expiry(minutes), "clientState": client_state})

    def renew(self, user: str, sid: str, minutes: int) -> dict[str, Any]:
        return self.graph.json(user, "PATCH", f"/subscriptions/{sid}",
                               json={"expirationDateTime": expiry(minutes)})


def expiry(minutes: int) -> str:
    when = datetime.now(timezone.utc) + timedelta(minutes=minutes)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")
