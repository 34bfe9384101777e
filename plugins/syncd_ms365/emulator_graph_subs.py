"""Subscriptions and change notifications of the Graph emulator (apis.md 4.5).

- ``POST /subscriptions`` validates the body, then performs the validation handshake: a POST
  to ``notificationUrl?validationToken=<token>`` (and to ``lifecycleNotificationUrl``) that
  must be answered 200, ``text/plain``, body = the token, within 10 s; else 400 and no
  subscription. ``expirationDateTime`` at most 4230 minutes ahead (400 beyond), also on
  ``PATCH /subscriptions/{id}``; ``DELETE`` 204. An expired subscription is gone (404).
- Each change of a contact in a subscribed mailbox is POSTed as ``{"value": [...]}`` with
  ``subscriptionId``, ``changeType``, ``resource``, ``resourceData``, ``clientState`` and
  ``tenantId`` by a sender thread that retries 5xx and failed deliveries with back-off
  (``delivery_attempts``); :meth:`Subscriptions.lifecycle` sends a lifecycle notification
  (``missed``, ``subscriptionRemoved``, ``reauthorizationRequired``).
"""

from __future__ import annotations

import json
import queue
import secrets
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlparse

import requests

from syncd_ms365.emulator_graph_store import graph_error

MAX_MINUTES = 4230
CHANGE_TYPES = {"created", "updated", "deleted"}
HANDSHAKE_TIMEOUT = 10.0


def parse_time(value: Any) -> datetime:
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise graph_error(400, "InvalidRequest", "expirationDateTime is not a date.") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when


def iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


class Subscriptions:
    def __init__(self, emulator):
        self.emulator = emulator
        self.subs: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.session = requests.Session()
        self.outbox: queue.Queue = queue.Queue()
        self.delivered: list[dict[str, Any]] = []
        self.failed_deliveries = 0
        self.enabled = True  # False: changes are not notified (a gap)
        self.delivery_attempts = 5
        self.allow_http_loopback = True
        self.clock_offset = 0.0  # seconds added to the emulator's notion of now
        self.handshake_timeout = HANDSHAKE_TIMEOUT  # Graph waits 10 s (apis.md 4.5)
        self._thread = threading.Thread(target=self._send_loop, name="graph-notify",
                                        daemon=True)
        self._thread.start()

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + timedelta(seconds=self.clock_offset)

    def _check_url(self, url: Any, key: str) -> None:
        parsed = urlparse(str(url or ""))
        loopback = parsed.hostname in ("127.0.0.1", "localhost", "::1")
        if parsed.scheme != "https" and not (
                parsed.scheme == "http" and loopback and self.allow_http_loopback):
            raise graph_error(400, "InvalidRequest", f"{key} must be an https URL.")

    def _check_expiry(self, value: Any) -> datetime:
        when = parse_time(value)
        if when > self.now() + timedelta(minutes=MAX_MINUTES):
            raise graph_error(400, "InvalidRequest", "Subscription expiration can only be "
                              f"{MAX_MINUTES} minutes in the future.")
        if when <= self.now():
            raise graph_error(400, "InvalidRequest", "expirationDateTime is in the past.")
        return when

    def _handshake(self, url: str) -> None:
        token = f"Validation: Testing client application reachability {secrets.token_hex(8)}"
        try:
            answer = self.session.post(url, params={"validationToken": token},
                                       headers={"Content-Type": "text/plain; charset=utf-8"},
                                       data=b"", timeout=self.handshake_timeout)
        except requests.RequestException as exc:
            raise graph_error(400, "InvalidRequest", "Subscription validation request "
                              f"failed. Notification endpoint must respond with 200 OK to "
                              f"validation request. ({type(exc).__name__})") from None
        ctype = answer.headers.get("Content-Type", "").split(";")[0].strip()
        if answer.status_code != 200 or ctype != "text/plain" or answer.text != token:
            raise graph_error(400, "InvalidRequest", "Subscription validation request "
                              "failed. Response must exactly match validationToken query "
                              "parameter.")

    def create(self, principal, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise graph_error(400, "InvalidRequest", "The body must be a JSON object.")
        for key in ("changeType", "notificationUrl", "resource", "expirationDateTime"):
            if not body.get(key):
                raise graph_error(400, "InvalidRequest", f"{key} is required.")
        types = set(str(body["changeType"]).split(","))
        if not types <= CHANGE_TYPES:
            raise graph_error(400, "InvalidRequest", "changeType must be created, updated "
                              "or deleted.")
        state = body.get("clientState")
        if state is not None and len(str(state)) > 128:
            raise graph_error(400, "InvalidRequest", "clientState is over 128 characters.")
        oid = self.emulator.mailbox_of_resource(principal, str(body["resource"]))
        self._check_url(body["notificationUrl"], "notificationUrl")
        if body.get("lifecycleNotificationUrl"):
            self._check_url(body["lifecycleNotificationUrl"], "lifecycleNotificationUrl")
        when = self._check_expiry(body["expirationDateTime"])
        self._handshake(body["notificationUrl"])
        if body.get("lifecycleNotificationUrl"):
            self._handshake(body["lifecycleNotificationUrl"])
        sub = {"id": str(uuid.uuid4()), "resource": body["resource"],
               "applicationId": principal.client_id, "changeType": ",".join(sorted(types)),
               "clientState": state, "notificationUrl": body["notificationUrl"],
               "lifecycleNotificationUrl": body.get("lifecycleNotificationUrl"),
               "expirationDateTime": iso(when), "creatorId": principal.oid or "",
               "_oid": oid, "_expires": when, "_types": types}
        with self.lock:
            self.subs[sub["id"]] = sub
        return self.public(sub)

    @staticmethod
    def public(sub: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in sub.items() if not k.startswith("_")}

    def _live(self, sid: str) -> dict[str, Any]:
        with self.lock:
            sub = self.subs.get(sid)
            if sub is not None and sub["_expires"] <= self.now():
                del self.subs[sid]
                sub = None
        if sub is None:
            raise graph_error(404, "ResourceNotFound", "The object was not found.")
        return sub

    def renew(self, sid: str, body: Any) -> dict[str, Any]:
        sub = self._live(sid)
        when = self._check_expiry((body or {}).get("expirationDateTime"))
        sub["_expires"] = when
        sub["expirationDateTime"] = iso(when)
        return self.public(sub)

    def delete(self, sid: str) -> None:
        self._live(sid)
        with self.lock:
            self.subs.pop(sid, None)

    def live(self) -> list[dict[str, Any]]:
        with self.lock:
            ids = list(self.subs)
        out = []
        for sid in ids:
            try:
                out.append(self._live(sid))
            except Exception:
                pass
        return out

    # -- notifications ---------------------------------------------------------------------

    def changed(self, oid: str, cid: str, change: str) -> None:
        if not self.enabled:
            return
        for sub in self.live():
            if sub["_oid"] != oid or change not in sub["_types"]:
                continue
            note = {"subscriptionId": sub["id"],
                    "subscriptionExpirationDateTime": sub["expirationDateTime"],
                    "changeType": change, "resource": f"Users/{oid}/Contacts/{cid}",
                    "resourceData": {"@odata.type": "#Microsoft.OutlookServices.Contact",
                                     "@odata.id": f"Users/{oid}/Contacts/{cid}",
                                     "@odata.etag": 'W/"x"', "id": cid},
                    "clientState": sub["clientState"],
                    "tenantId": self.emulator.tenant_id}
            self.outbox.put((sub["notificationUrl"], {"value": [note]}))

    def lifecycle(self, sid: str, event: str) -> None:
        sub = self._live(sid)
        note = {"subscriptionId": sid, "subscriptionExpirationDateTime":
                sub["expirationDateTime"], "tenantId": self.emulator.tenant_id,
                "clientState": sub["clientState"], "lifecycleEvent": event}
        if event == "subscriptionRemoved":
            with self.lock:
                self.subs.pop(sid, None)
        url = sub.get("lifecycleNotificationUrl") or sub["notificationUrl"]
        self.outbox.put((url, {"value": [note]}))

    def _send_loop(self) -> None:
        while True:
            item = self.outbox.get()
            if item is None:
                return
            url, body = item
            data = json.dumps(body).encode()
            for attempt in range(self.delivery_attempts):
                try:
                    answer = self.session.post(url, data=data, timeout=10, headers={
                        "Content-Type": "application/json"})
                    if 200 <= answer.status_code < 300:
                        self.delivered.append(body)
                        break
                    if answer.status_code < 500:
                        break  # refused: Graph does not retry 4xx
                except requests.RequestException:
                    pass
                time.sleep(min(2.0, 0.05 * 2 ** attempt))
            else:
                self.failed_deliveries += 1

    def stop(self) -> None:
        self.outbox.put(None)
