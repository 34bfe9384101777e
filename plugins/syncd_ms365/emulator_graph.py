"""An emulator of Microsoft Graph v1.0 for Outlook contacts (apis.md 4.7): a real HTTP server
on loopback, fed the bearer tokens the identity emulator (:mod:`.emulator_identity`) mints.

- ``/v1.0/me/contacts[/{id}]`` and ``/v1.0/users/{id|upn}/contacts[/{id}]``: GET (list pages
  of ``$top`` ≤ 1000, default 10, ``@odata.nextLink`` with ``$skip``), POST (201), PATCH,
  DELETE (204); every write churns ``changeKey`` and ``lastModifiedDateTime``. Bodies are
  checked as contact.md types them (:func:`.emulator_graph_store.validate_contact`: unknown or
  read-only properties, wrong types, malformed extended-property ids are 400).
  ``singleValueExtendedProperties`` are written on POST/PATCH, read with
  ``$expand=singleValueExtendedProperties($filter=id eq '…')`` and found with
  ``$filter=singleValueExtendedProperties/Any(ep: ep/id eq '…' and ep/value eq '…')``
  (value compared case-insensitively, apis.md 4.3); ``$filter=emailAddresses/any(a:a/address
  eq '…')`` too. Any other ``$filter`` is a 400.
- ``/contactFolders/{id}/contacts/delta`` (apis.md 4.4): ``Prefer: odata.maxpagesize``,
  ``$skiptoken`` nextLinks, a final ``$deltatoken`` deltaLink, changes collapsed per contact,
  deletions as ``{"id", "@removed": {"reason": "deleted"}}``.
- ``/subscriptions`` and notifications: :mod:`.emulator_graph_subs`.
- ``POST /v1.0/$batch`` (apis.md 4.6): at most 20 requests with unique ids (400 otherwise),
  ``dependsOn`` (a request whose dependency failed answers 424), per-item statuses incl. 429
  with its own ``Retry-After``.
- Limits (apis.md 4.6, per app per mailbox): at most ``mailbox_concurrency`` (4) requests at
  once, and ``request_budget`` (10 000) per ``budget_window`` (600 s); beyond either, 429
  with ``Retry-After`` (a hold on that mailbox, counted as a violation when not honoured).
  In a batch, Graph runs requests without ``dependsOn`` in parallel: those beyond the
  mailbox's free slots are answered 429 each (sequence them with ``dependsOn``).
- Auth: a bearer token the identity emulator issued (401 ``InvalidAuthenticationToken``);
  ``/me`` needs a delegated token (400); ``/users/{id}`` needs the user's own delegated token
  or an application token with the ``Contacts.ReadWrite`` role (403 ``ErrorAccessDenied``).

Switches where apis.md is [GAP]/[INFER] (attributes, also ``POST /_emulator/settings``):
``merge_on_email`` (seed 002 chapter 3: Outlook fills a new card from an existing card with
the same e-mail, a change syncd then sees; off by default), ``allow_http_loopback`` (the docs
want https notification URLs; on by default for loopback receivers in tests and the sandbox),
``delta_max_page`` (the largest page a delta honours, 1000), ``throttle_retry_after``
(seconds, 1), ``notifications`` (False: changes are not notified, a gap), and
``subscriptions.handshake_timeout`` (10 s as documented; tests shorten it), ``read_only``
(mailboxes whose writes are answered 403, as a revoked or read-only permission is) and
``omit_fields`` (properties left out of every read: an answer missing a field).
Control: ``POST /_emulator/expire-delta`` (every delta and skip token answers 410
``SyncStateNotFound``), ``POST /_emulator/lifecycle`` ``{"subscription", "event"}``,
``POST /_emulator/clock`` ``{"offset"}`` (seconds added to the subscriptions' clock).
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections import deque
from typing import Any
from urllib.parse import quote

from syncd.plugin import Emulator, HTTPError, Request, Router
from syncd_ms365.emulator_graph_batch import run_batch
from syncd_ms365.emulator_graph_contacts import add_routes, omit
from syncd_ms365.emulator_graph_store import GraphStore, graph_error
from syncd_ms365.emulator_graph_subs import Subscriptions


class GraphEmulator(Emulator):
    kind = "graph"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, identity=None,
                 seed: int | None = None, mailbox_concurrency: int = 4,
                 request_budget: int = 10_000, budget_window: float = 600.0,
                 merge_on_email: bool = False):
        self.identity = identity
        self.tenant_id = getattr(identity, "tenant_id", "tenant")
        self.store = GraphStore()
        self.mailbox_concurrency = mailbox_concurrency
        self.request_budget = request_budget
        self.budget_window = budget_window
        self.merge_on_email = merge_on_email
        self.delta_max_page = 1000
        self.throttle_retry_after = 1.0
        self.read_only: set[str] = set()
        self.omit_fields: set[str] = set()
        self._inflight: dict[str, int] = {}
        self.max_inflight = 0  # the most requests one mailbox had in flight at once
        self.spent_total = 0  # requests counted against the mailboxes' budgets
        self._spent: dict[tuple[str, str], deque[float]] = {}
        self._delta: dict[str, dict[str, Any]] = {}
        self._glock = threading.Lock()
        self.subscriptions = Subscriptions(self)
        self.store.listeners.append(self.subscriptions.changed)
        super().__init__(host, port, seed=seed, threads=16)

    # -- settings --------------------------------------------------------------------------

    @property
    def allow_http_loopback(self) -> bool:
        return self.subscriptions.allow_http_loopback

    @allow_http_loopback.setter
    def allow_http_loopback(self, value: bool) -> None:
        self.subscriptions.allow_http_loopback = value

    @property
    def notifications(self) -> bool:
        return self.subscriptions.enabled

    @notifications.setter
    def notifications(self, value: bool) -> None:
        self.subscriptions.enabled = value

    def expire_delta(self) -> None:
        with self._glock:
            for state in self._delta.values():
                state["expired"] = True

    def stop(self) -> None:
        self.subscriptions.stop()
        super().stop()

    def error_body(self, status: int, message: str) -> tuple[Any, str]:
        return graph_error(status, "ErrorThrottled" if status == 429 else str(status),
                           message).body, "application/json"

    def client_of(self, request: Request) -> str:
        principal = getattr(request, "principal", None)
        if principal is not None:
            return principal.client_id
        return super().client_of(request)

    def oid_of(self, user: str) -> str | None:
        users = getattr(self.identity, "users", {})
        return users.get(user.lower()) or (user if user in users.values() else None)

    # -- routes ----------------------------------------------------------------------------

    def setup_routes(self, router: Router) -> None:
        for base in ("/v1.0/me", "/v1.0/users/{uid}"):
            add_routes(self, router, base)  # :mod:`.emulator_graph_contacts`
            router.add("GET", base + "/contactFolders/{fid}/contacts/delta", self._delta_page)
        subs = self.subscriptions
        router.add("POST", "/v1.0/subscriptions",
                   lambda r: (201, subs.create(self._auth(r), r.json())))
        router.add("GET", "/v1.0/subscriptions",
                   lambda r: self._auth(r) and {"value": [subs.public(s) for s in subs.live()]})
        router.add("PATCH", "/v1.0/subscriptions/{sid}",
                   lambda r: self._auth(r) and subs.renew(r.params["sid"], r.json()))
        router.add("DELETE", "/v1.0/subscriptions/{sid}", self._delete_subscription)
        router.add("POST", r"/v1.0/\$batch", lambda r: run_batch(self, r))
        router.add("POST", "/_emulator/settings", self._settings)
        router.add("POST", "/_emulator/expire-delta", self._expire_delta)
        router.add("POST", "/_emulator/lifecycle", self._lifecycle)
        router.add("POST", "/_emulator/clock", self._clock)

    def _delete_subscription(self, request: Request) -> tuple[int, None]:
        self._auth(request)
        self.subscriptions.delete(request.params["sid"])
        return 204, None

    def _expire_delta(self, request: Request) -> dict:
        self.expire_delta()
        return {}

    def _lifecycle(self, request: Request) -> dict:
        body = request.json()
        self.subscriptions.lifecycle(body["subscription"], body["event"])
        return {}

    def _clock(self, request: Request) -> dict:
        self.subscriptions.clock_offset = float(request.json()["offset"])
        return {}

    def _settings(self, request: Request) -> dict:
        for key, value in (request.json() or {}).items():
            if key not in ("merge_on_email", "allow_http_loopback", "delta_max_page",
                           "throttle_retry_after", "notifications", "mailbox_concurrency",
                           "request_budget", "budget_window", "read_only",
                           "omit_fields"):
                raise HTTPError(400, {"error": f"unknown setting {key!r}"})
            setattr(self, key, set(value) if key in ("read_only", "omit_fields") else value)
        return {}

    # -- auth and limits -------------------------------------------------------------------

    def _auth(self, request: Request):
        principal = getattr(request, "principal", None)
        if principal is None:
            token = self.identity and self.identity.tokens.bearer(request)
            principal = self.identity.principal(token) if self.identity else None
            if principal is None:
                raise graph_error(401, "InvalidAuthenticationToken",
                                  "Access token is empty, expired or invalid.")
            # a batch's inner requests carry their caller; Request declares no such field
            request.principal = principal  # type: ignore[attr-defined]
        return principal

    def _mailbox(self, request: Request) -> str:
        principal = self._auth(request)
        uid = request.params.get("uid")
        return self._resolve(principal, uid)

    def _resolve(self, principal, uid: str | None) -> str:
        if uid is None:
            if principal.user is None:
                raise graph_error(400, "BadRequest", "/me request is only valid with "
                                  "delegated authentication flow.")
            return principal.oid
        oid = self.oid_of(uid)
        if oid is None:
            raise graph_error(404, "ErrorInvalidUser", "The requested user is invalid.")
        if principal.user is not None and principal.oid != oid:
            raise graph_error(403, "ErrorAccessDenied", "Access is denied.")
        if principal.user is None and "Contacts.ReadWrite" not in principal.roles:
            raise graph_error(403, "ErrorAccessDenied", "Access is denied. Check "
                              "credentials and try again.")
        return oid

    def mailbox_of_resource(self, principal, resource: str) -> str:
        path = resource.strip("/")
        if path.lower() == "me/contacts":
            return self._resolve(principal, None)
        match = re.fullmatch(r"users/([^/]+)/contacts", path, re.I)
        if not match:
            raise graph_error(400, "InvalidRequest", f"Unsupported resource {resource!r}.")
        return self._resolve(principal, match.group(1))

    def _limit(self, request: Request, oid: str, cost: int = 1) -> None:
        """The mailbox's request budget (the concurrency slot is taken by :meth:`_slot`)."""
        if not getattr(request, "in_batch", False):  # the batch was checked as a whole
            self.check_retry_after(request, scope=oid)
        key = (self.client_of(request), oid)
        now = time.monotonic()
        with self._glock:
            spent = self._spent.setdefault(key, deque())
            while spent and spent[0] <= now - self.budget_window:
                spent.popleft()
            if len(spent) + cost > self.request_budget:
                wait = max(1.0, float(int(spent[0] + self.budget_window - now) + 1))
                raise self.throttle(request, wait, scope=oid)
            spent.extend([now] * cost)
            self.spent_total += cost

    def _slot(self, request: Request, oid: str, take: bool = True) -> None:
        with self._glock:
            busy = self._inflight.get(oid, 0)
            if take and busy >= self.mailbox_concurrency:
                over = True
            else:
                over = False
                self._inflight[oid] = busy + (1 if take else -1)
                self.max_inflight = max(self.max_inflight, self._inflight[oid])
        if over:
            raise self.throttle(request, self.throttle_retry_after, scope=oid)

    def _run(self, request: Request, work):
        oid = self._mailbox(request)
        self._limit(request, oid)
        self._slot(request, oid)
        try:
            return work(oid)
        finally:
            self._slot(request, oid, take=False)

    # -- delta -----------------------------------------------------------------------------

    def _delta_page(self, request: Request):
        def work(oid):
            box = self.store.mailbox(oid)
            if request.params["fid"] != box.folder_id:
                raise graph_error(404, "ErrorItemNotFound", "The folder was not found.")
            skip, delta = request.arg("$skiptoken"), request.arg("$deltatoken")
            with self._glock:
                state = self._delta.get(skip or delta or "")
            if (skip or delta) and (state is None or state.get("expired")):
                raise graph_error(410, "SyncStateNotFound", "The sync state is invalid or "
                                  "expired; start a new synchronization.")
            if skip:
                ids, seq, select, size = state["ids"], state["seq"], state["select"], \
                    state["size"]
            else:
                prefer = request.header("Prefer") or ""
                found = re.search(r"odata\.maxpagesize=(\d+)", prefer)
                size = min(int(found.group(1)) if found else 10, self.delta_max_page)
                with self.store.lock:
                    seq = self.store.seq
                    if delta:
                        last: dict[str, str] = {}
                        for s, cid, change in box.log:
                            if s > state["seq"]:
                                last[cid] = change
                        ids = list(last)
                        select = state["select"]
                    else:
                        ids = list(box.contacts)
                        select = request.arg("$select")
            page, rest = ids[:size], ids[size:]
            rows = []
            with self.store.lock:
                for cid in page:
                    contact = box.contacts.get(cid)
                    if contact is None:
                        rows.append({"id": cid, "@removed": {"reason": "deleted"}})
                    else:
                        row = omit(self, self.store.public(contact))
                        if select:
                            keep = {s.strip() for s in select.split(",")} | {"id"}
                            row = {k: v for k, v in row.items() if k in keep}
                        rows.append(row)
            token = secrets.token_urlsafe(18)
            base = f"{self.url}{request.path}"
            with self._glock:
                if rest:
                    self._delta[token] = {"ids": rest, "seq": seq, "select": select,
                                          "size": size}
                    link = ("@odata.nextLink", f"{base}?$skiptoken={quote(token)}")
                else:
                    self._delta[token] = {"seq": seq, "select": select}
                    link = ("@odata.deltaLink", f"{base}?$deltatoken={quote(token)}")
            return {"@odata.context": f"{self.url}/v1.0/$metadata#Collection(contact)",
                    "value": rows, link[0]: link[1]}
        return self._run(request, work)
