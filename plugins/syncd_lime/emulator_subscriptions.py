"""Subscriptions of the Lime emulator (the Webhooks add-on, apis.md 2.3 [DOC]): ``GET
/api/v1/subscription/available/``, ``GET|POST /api/v1/subscription/`` and ``GET|PUT|DELETE
/api/v1/subscription/{id}``; see :mod:`syncd_lime.emulator` for the shapes and switches."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from syncd.plugin import HTTPError, Request


class Subscriptions:
    """Mixed into :class:`~syncd_lime.emulator.LimeEmulator` (which provides ``lock``,
    ``subscriptions``, ``_sub_ids``, ``subscription_shape`` and ``available_events``)."""

    lock: threading.RLock
    #: subscription id -> the subscription (with its secret)
    subscriptions: dict[int, dict[str, Any]]
    _sub_ids: Iterator[int]
    subscription_shape: str

    if TYPE_CHECKING:
        def available_events(self) -> list[str]: ...

    def _public(self, sub: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in sub.items() if k != "secret"}

    def _subscriptions(self, request: Request):
        wanted = {k: request.arg(k) for k in ("events", "target_url", "enabled")}
        with self.lock:
            subs = [self._public(s) for s in self.subscriptions.values()]
        if wanted["events"]:
            events = set(wanted["events"].split(","))
            subs = [s for s in subs if events <= set(s["events"])]
        if wanted["target_url"]:
            subs = [s for s in subs if s["target_url"] == wanted["target_url"]]
        if wanted["enabled"]:
            subs = [s for s in subs if s["enabled"] == (wanted["enabled"].lower() == "true")]
        if self.subscription_shape == "hal":
            return {"_embedded": {"subscriptions": subs}}
        return subs

    def _valid(self, body: Any, partial: bool) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise HTTPError(400, {"error": "the body must be a JSON object"})
        if not partial and (not body.get("events") or not body.get("target_url")):
            raise HTTPError(400, {"error": "events and target_url are required"})
        if "events" in body:
            events = body["events"]
            bad = [e for e in events if e not in self.available_events()] \
                if isinstance(events, list) else ["(not a list)"]
            if bad or not events:
                raise HTTPError(400, {"error": f"events not available: {bad or 'none given'}"})
        return {k: body[k] for k in ("events", "target_url", "secret", "name", "enabled")
                if k in body}

    def _subscribe(self, request: Request):
        values = self._valid(request.json(), partial=False)
        with self.lock:
            sid = next(self._sub_ids)
            sub = {"id": sid, "events": [], "target_url": "", "secret": None, "name": "",
                   "enabled": True, **values}
            self.subscriptions[sid] = sub
            return 201, self._public(sub)

    def _subscription(self, sid: str, public: bool = False) -> dict[str, Any]:
        try:
            sub = self.subscriptions[int(sid)]
        except (KeyError, ValueError):
            raise HTTPError(404, {"error": f"no subscription {sid}"}) from None
        return self._public(sub) if public else sub

    def _update_subscription(self, request: Request):
        values = self._valid(request.json(), partial=True)
        with self.lock:
            sub = self._subscription(request.params["id"])
            sub.update(values)
            return self._public(sub)

    def _unsubscribe(self, request: Request):
        with self.lock:
            self.subscriptions.pop(self._subscription(request.params["id"])["id"])
        return 204, None
