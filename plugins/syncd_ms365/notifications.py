"""Graph change notifications at the receiver (apis.md 4.5), and the subscriptions that
produce them, renewed before they expire by APScheduler.

- :func:`handshake`: ``POST …?validationToken=<token>`` is answered 200 ``text/plain`` with
  the (URL-decoded) token, nothing queued; Graph waits at most 10 s for it.
- :func:`parser`: ``{"value": [...]}``; every notification's ``clientState`` must equal the
  connection's ``client_state`` (compared in constant time), else the whole delivery is
  refused with 401. Change notifications become events ``kind`` = the change type,
  lifecycle notifications ``kind`` = ``lifecycle:<event>``; ``entity`` is the subscription.
- :class:`SubscriptionKeeper`: one subscription per linked mailbox; created with the
  connection's ``subscription_minutes`` (≤ 4230), renewed ``renew_before`` minutes before
  it expires; a renewal that finds it gone (404) creates another and reports a gap (the
  caller runs a delta round); lifecycle ``reauthorizationRequired`` renews,
  ``subscriptionRemoved`` recreates and reports a gap, ``missed`` reports a gap.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import structlog

from syncd.plugin import Event, RemoteError, WebhookRejected

log = structlog.get_logger("syncd.ms365.notifications")


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    reveal = getattr(value, "reveal", None)
    return reveal() if callable(reveal) else str(value)


def handshake(name: str, config: Mapping[str, Any]):
    def answer(query: Mapping[str, list[str]], headers: Mapping[str, str]):
        token = query.get("validationToken")
        if token:
            return 200, token[0], "text/plain"
        return None
    return answer


def parser(name: str, config: Mapping[str, Any]):
    expected = (_secret(config.get("client_state")) or "").encode()

    def parse(headers: Mapping[str, str], raw: bytes) -> list[Event]:
        if not expected:
            raise WebhookRejected(401, "no client_state configured for this connection")
        try:
            notes = json.loads(raw)["value"]
        except (ValueError, KeyError, TypeError):
            raise WebhookRejected(400, "not a change notification collection") from None
        events = []
        for note in notes:
            given = str(note.get("clientState") or "").encode()
            if not hmac.compare_digest(given, expected):
                raise WebhookRejected(401, "clientState does not match")
            if note.get("lifecycleEvent"):
                events.append(Event(record_id=str(note.get("subscriptionId")),
                                    kind=f"lifecycle:{note['lifecycleEvent']}",
                                    entity=note.get("subscriptionId")))
            else:
                data = note.get("resourceData") or {}
                events.append(Event(record_id=str(data.get("id") or ""),
                                    kind=str(note.get("changeType") or "updated"),
                                    entity=note.get("subscriptionId")))
        if events:  # the link's next round starts now (a cheap, thread-safe signal)
            from syncd_ms365.service import LIFECYCLE, WAKE
            LIFECYCLE[name].extend((e.entity or "", e.kind[10:]) for e in events
                                   if e.kind.startswith("lifecycle:"))
            WAKE[name].set()
        return events
    return parse


class SubscriptionKeeper:
    def __init__(self, mailbox, pairs, url: str, client_state: str, minutes: int,
                 renew_before: int, scheduler, on_gap: Callable[[str], None]):
        self.mailbox, self.pairs = mailbox, pairs
        self.url, self.client_state = url, client_state
        self.minutes, self.renew_before = minutes, renew_before
        self.scheduler, self.on_gap = scheduler, on_gap

    def job_id(self, user: str) -> str:
        return f"ms365-renew-{user}"

    def ensure(self, user: str) -> None:
        state = self.pairs.mailbox(user)
        if state["subscription"] and state["expires"]:
            expires = datetime.fromisoformat(state["expires"])
            if expires - timedelta(minutes=self.renew_before) > datetime.now(timezone.utc):
                self._schedule(user, expires)
                return
            self.renew(user)
            return
        self._create(user)

    def _create(self, user: str) -> None:
        sub = self.mailbox.subscribe(user, self.url, self.client_state, self.minutes)
        self._store(user, sub)
        log.info("ms365.subscribed", user=user, expires=sub["expirationDateTime"])

    def _store(self, user: str, sub: dict[str, Any]) -> None:
        expires = datetime.fromisoformat(
            sub["expirationDateTime"].replace("Z", "+00:00").replace(".0000000", ""))
        self.pairs.set_mailbox(user, subscription=sub["id"], expires=expires.isoformat())
        self._schedule(user, expires)

    def _schedule(self, user: str, expires: datetime) -> None:
        when = max(expires - timedelta(minutes=self.renew_before),
                   datetime.now(timezone.utc) + timedelta(seconds=1))
        self.scheduler.add_job(self.renew, "date", run_date=when, args=[user],
                               id=self.job_id(user), replace_existing=True,
                               misfire_grace_time=3600, coalesce=True)

    def renew(self, user: str) -> None:
        sid = self.pairs.mailbox(user)["subscription"]
        try:
            if not sid:
                raise RemoteError("no subscription", status=404)
            self._store(user, self.mailbox.renew(user, sid, self.minutes))
            log.info("ms365.subscription_renewed", user=user)
        except RemoteError as exc:
            if exc.status != 404:
                raise
            log.warning("ms365.subscription_gone", user=user)
            self._create(user)
            self.on_gap(user)

    def lifecycle(self, user: str, event: str) -> None:
        if event == "reauthorizationRequired":
            self.renew(user)
        elif event == "subscriptionRemoved":
            self.pairs.set_mailbox(user, subscription=None, expires=None)
            self._create(user)
            self.on_gap(user)
        else:  # missed: notifications were lost
            self.on_gap(user)
