"""An emulator of the Tribe CRM API (apis.md 1.9): a real HTTP server on loopback.

- ``POST /oauth2/token`` (form-encoded client credentials) issues expiring bearer tokens;
  every ``/v1/`` call needs a valid one (401 otherwise).
- ``/v1/odata/{Set}`` and ``/v1/odata/{Set}({guid})``: the sets of :data:`SETS` plus the
  abstract ones (``Relation``, ``Relationship``, ``Relationship_Person_Contact`` ...),
  ``GetCurrentEmployee()`` and ``$metadata`` (CSDL XML of exactly what is served). Queries
  as in :mod:`.odata`, served by :mod:`.emulator_query`;
  writes: POST create (201), PUT/PATCH partial update, POST with ``ID`` = update, DELETE (204),
  navigation binding ``{"Nav": {"ID": ...}}`` or inline creation ``{"Person": {...}}``.
- ``/v1/webhooks`` GET/POST/DELETE; every change made through the API is delivered to the
  webhooks registered for the entity's type, signed (see :mod:`.webhooks`), by a background
  sender that retries non-2xx answers with back-off.

Strict where apis.md says [DOC] or [CODE]: form-encoded client-credentials tokens (1.1);
``in``/``has`` refused, ``$select``/``$expand`` of a property or navigation the entity type
lacks answered 400 before any row is read, as an OData v4 server (Olingo, 1.0 and 1.5) does;
``LastName`` required on create, navigation binding ``{"Nav": {"ID": ...}}`` (1.3);
employees cannot be deleted (1.2). Activities: ``Activity_Task`` is created only with
``Subject``, ``StartDate``, ``Assignee`` (an Employee) and ``Relationship`` (the body of the
vendor's client, 1.6 [CODE]); ``Activity_Event`` (the set is named in 1.2, its fields are a
GAP: those of a task plus a ``Relation`` navigation) with ``Subject`` and ``StartDate``;
400 otherwise (``ACTIVITY_REQUIRED`` in :mod:`.emulator_model`).

Switches where apis.md says [GAP] or [INFER] (constructor arguments, also settable by
``POST /_emulator/settings``; connector tests run against each setting):

- paging (apis.md 1.5: "the public docs do not state a default/max page size or whether
  ``@odata.nextLink`` is emitted" [GAP]): ``server_paging`` caps every page at that many rows
  (None: no cap, ``$top`` is honoured); with a cap, ``next_links = True`` answers a capped
  page with an ``@odata.nextLink`` (as an OData v4 server doing server-driven paging does),
  ``next_links = False`` with just the short page (plus ``@odata.count`` when asked);
  ``ignore_skip = True`` makes the server ignore ``$skip`` (every page is the first: a
  broken server or proxy the client must not loop on); ``result_window = N`` serves no row
  past the N-th of a listing (an empty page there) while ``@odata.count`` still counts them
  all (a server that ends a listing early: the run must not call itself complete);
- ``label_navs`` (apis.md 1.4: "Exact entity set / nav name for person<->label ... [GAP]"):
  which of the label navigations ``Labels`` and ``LabelAssignments`` this account has (both
  by default; ``["Labels"]``: an account without ``LabelAssignments``, where
  ``$expand=LabelAssignments`` is a 400 as for any unknown navigation, and ``$metadata``
  does not list it);
- ``omit_navs`` (apis.md 1.4: the person-label navigation is a [GAP]; a server may also
  leave out what the caller may not read): navigations left out of every answer although
  ``$expand`` asked for them (e.g. ``["LabelAssignments"]``: persons come without their label
  data; ``["Label"]``: label links come without their label);
- ``request_budget`` (apis.md 1.8: no published rate limits [GAP]): requests per second per
  token, 429 + Retry-After beyond it;
- ``signature_header`` (apis.md 1.7: the header name is a [GAP]);
- ``duplicate_label_links`` (person-label links are a [GAP]): False answers 409 to a
  ``LabelAssignment`` POST for a label already set; True makes a second link, as an entity
  set without a uniqueness constraint would (a label then goes with its last link);
- ``person_former_field`` (apis.md 1.4: the "Former" status is [DOC], its API name [GAP]):
  the boolean field that marks a person (a private relationship) former, ``IsFormer`` by
  default like the contacts' own; ``None``: persons have no such field (``$metadata`` lists
  none, and writing it is a 400 as for any property the type lacks).

Relationship manager and owners (seed 002; apis.md 1.4: ``AccountManager`` [CODE] on
commercial relationships, on persons and contacts [INFER], the owners' name [GAP]): persons
and contacts have the navigations ``AccountManager`` (one employee) and ``Owners`` (employees,
bound as a list), and contacts and persons a former flag (``IsFormer``; the persons' one is
the ``person_former_field`` switch); the ms365 link's ``manager_nav``, ``owners_nav`` and
``former_field`` options name them.

Labels (names of person-label links are a GAP): the collection
navigation ``Labels`` (bind the whole list with PUT) and the link entities
``LabelAssignment`` (navigations ``Relation``, ``Label``; ``CreationDate`` = when the label was
set), reachable from a person as ``LabelAssignments``; POST/DELETE a ``LabelAssignment`` sets or
removes one label. Any of these fires the person's ``EntityUpdateMutation`` webhook.
Control: ``POST /_emulator/settings`` (the switches above and ``token_lifetime``),
``POST /_emulator/expire-tokens``, plus the base class' faults.
"""

from __future__ import annotations

import random
import secrets
import time
from typing import Any

import requests

from syncd.plugin import Emulator, HTTPError, Request, Router, TokenIssuer
from syncd_tribe.emulator_access import Accessors
from syncd_tribe.emulator_model import PERSON_FORMER
from syncd_tribe.emulator_query import LABEL_NAVS, ODATA, Queries, split_segment
from syncd_tribe.emulator_seed import seed_store, setup_identity
from syncd_tribe.emulator_sender import Sender
from syncd_tribe.emulator_store import (
    LABEL_LINK_SET,
    SETS,
    UNDELETABLE,
    Store,
    concrete_sets,
    metadata,
)
from syncd_tribe.odata import ODataError

#: The switches ``POST /_emulator/settings`` sets (see the module docstring).
SETTINGS = ("server_paging", "next_links", "ignore_skip", "result_window", "omit_navs",
            "label_navs", "request_budget", "duplicate_label_links", "person_former_field")


class TribeEmulator(Queries, Accessors, Emulator):
    kind = "tribe"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, seed: int | None = None,
                 threads: int = 16, client_id: str = "syncd-sandbox",
                 client_secret: str = "sandbox-secret", token_lifetime: float = 3600.0,
                 signature_header: str = "X-Tribe-Signature", server_paging: int | None = None,
                 next_links: bool = True, ignore_skip: bool = False,
                 result_window: int | None = None, omit_navs: tuple[str, ...] = (),
                 label_navs: tuple[str, ...] = LABEL_NAVS,
                 request_budget: float | None = None, delivery_attempts: int = 5,
                 delivery_backoff: float = 0.2, duplicate_label_links: bool = False,
                 webhook_secret: str = "sandbox-webhook-secret",
                 person_former_field: str | None = PERSON_FORMER):
        self.client_id = client_id
        self.client_secret = client_secret
        #: The secret ``sandbox_config`` gives syncd (it registers webhooks with it).
        self.webhook_secret = webhook_secret
        self.signature_header = signature_header
        self.server_paging = server_paging
        self.next_links = next_links
        self.ignore_skip = ignore_skip
        self.result_window = result_window
        self.request_budget = request_budget
        self.tokens = TokenIssuer(token_lifetime, prefix="tribe")
        self.store = Store()
        self.omit_navs = omit_navs
        self.store.duplicate_label_links = duplicate_label_links
        self.label_navs = label_navs
        self.employee_id = setup_identity(self.store)
        self._webhooks: dict[str, dict[str, Any]] = {}
        self._buckets: dict[str, list[float]] = {}
        #: collection GETs per entity set, and how many of them answered an empty page
        self.list_requests: dict[str, int] = {}
        self.empty_pages: dict[str, int] = {}
        self.sender: Sender = Sender(signature_header, delivery_attempts, delivery_backoff)
        super().__init__(host, port, seed=seed, threads=threads)
        self.person_former_field = person_former_field

    @property
    def duplicate_label_links(self) -> bool:
        return self.store.duplicate_label_links

    @duplicate_label_links.setter
    def duplicate_label_links(self, value: bool) -> None:
        self.store.duplicate_label_links = bool(value)

    # -- routes ----------------------------------------------------------------------------

    def setup_routes(self, router: Router) -> None:
        router.add("POST", "/oauth2/token", self._token)
        router.add("GET", "/v1/webhooks", lambda r: {"value": self.webhooks(r)})
        router.add("POST", "/v1/webhooks", self._create_webhook)
        router.add("DELETE", "/v1/webhooks/{id}", self._delete_webhook)
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            router.add(method, ODATA + "/{segment}", self._odata)
        router.add("POST", "/_emulator/settings", self._settings)
        router.add("POST", "/_emulator/expire-tokens", self._expire_tokens)

    def _expire_tokens(self, request: Request) -> dict:
        self.tokens.expire_all()
        return {}

    def _settings(self, request: Request) -> dict:
        body = request.json() or {}
        for key in SETTINGS:
            if key in body:
                setattr(self, key, body[key])
        if "token_lifetime" in body:
            self.tokens.lifetime = float(body["token_lifetime"])
        return {**{key: getattr(self, key) for key in SETTINGS},
                "token_lifetime": self.tokens.lifetime}

    def _token(self, request: Request):
        form = request.form()
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type",
                         "error_description": "only client_credentials is supported"}
        if form.get("client_id") != self.client_id or \
                form.get("client_secret") != self.client_secret:
            return 401, {"error": "invalid_client",
                         "error_description": "Client authentication failed"}
        token, lifetime = self.tokens.issue()
        return {"access_token": token, "token_type": "bearer", "expires_in": int(lifetime),
                "scope": form.get("scope", "read write")}

    def _authorize(self, request: Request) -> None:
        token = TokenIssuer.bearer(request)
        if token is None or not self.tokens.valid(token):
            raise HTTPError(401, {"error": "missing, invalid or expired bearer token"},
                            {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if self.request_budget:
            rate = float(self.request_budget)
            now = time.monotonic()
            with self._stats_lock:
                bucket = self._buckets.setdefault(token, [rate, now])
                bucket[0] = min(rate, bucket[0] + (now - bucket[1]) * rate)
                bucket[1] = now
                if bucket[0] < 1.0:
                    wait = max(0.05, (1.0 - bucket[0]) / rate)
                    wait = round(wait + 0.049, 1)
                else:
                    bucket[0] -= 1.0
                    wait = 0.0
            if wait:
                raise self.throttle(request, wait)

    # -- OData -----------------------------------------------------------------------------

    def _odata(self, request: Request):
        self._authorize(request)
        segment = request.params["segment"]
        try:
            if segment == "$metadata":  # CSDL XML, derived from the store's model
                return 200, metadata(self.store.model, self.store.fields), {}, "application/xml"
            if segment == "GetCurrentEmployee()":
                return self._get_one("Relationship_Person_Contact_Employee", self.employee_id,
                                     request)
            if segment == "Webhook" and request.method == "GET":
                return {"value": self.webhooks(request)}
            set_name, key = split_segment(segment)
            try:
                concrete_sets(set_name)
            except KeyError:
                raise HTTPError(404, {"error": f"Resource not found for the segment "
                                               f"'{set_name}'"}) from None
            if request.method == "GET":
                if key is None:
                    return self._get_many(set_name, request)
                return self._get_one(set_name, key, request)
            if request.method == "DELETE" and key is not None:
                return self._delete(set_name, key)
            if request.method in ("PUT", "PATCH") and key is not None:
                return self._update(set_name, key, request.json())
            if request.method == "POST" and key is None:
                body = request.json()
                if isinstance(body, dict) and body.get("ID"):
                    return self._update(set_name, str(body["ID"]), body)
                return self._create(set_name, body)
            raise HTTPError(405, {"error": f"{request.method} is not allowed here"})
        except ODataError as exc:
            raise HTTPError(exc.status, {"error": str(exc)}) from None

    # -- writes ----------------------------------------------------------------------------

    def _create(self, set_name: str, body: Any):
        if set_name not in SETS:
            raise HTTPError(405, {"error": f"{set_name} is abstract: create a concrete type"})
        with self.lock:
            changes: list[tuple[str, str]] = []
            entity = self.store.write(set_name, body, None, changes)
            out = self.store.render(entity["ID"], None, {})
            self._notify(changes)
        return 201, out

    def _update(self, set_name: str, key: str, body: Any):
        with self.lock:
            eid = self.store.find(set_name, key)
            if eid is None:
                raise HTTPError(404, {"error": f"No {set_name} with ID {key}"})
            changes: list[tuple[str, str]] = []
            self.store.write(self.store.set_of[eid], body, eid, changes)
            out = self.store.render(eid, None, {})
            self._notify(changes)
        return out

    def _delete(self, set_name: str, key: str):
        with self.lock:
            eid = self.store.find(set_name, key)
            if eid is None:
                raise HTTPError(404, {"error": f"No {set_name} with ID {key}"})
            if self.store.set_of[eid] in UNDELETABLE:
                raise HTTPError(400, {"error": "employees cannot be deleted through the API"})
            changes = [(rid, "deleted") for (s, nav), index in list(self.store.reverse.items())
                       if nav in ("Person", "Relation") for rid in list(index.get(eid, ()))]
            changes.append((eid, "deleted"))
            payloads = [self._payload(i, k) for i, k in changes]
            # removing a label link changes its person (or organisation): like any change
            owner = self.store.owner_of_link(eid) \
                if self.store.set_of[eid] == LABEL_LINK_SET else None
            for rid, _ in changes:
                if rid in self.store.entities:
                    self.store.remove(rid)
            if owner is not None:
                self.store.put(self.store.set_of[owner], {"ID": owner})  # LastMutationDate
                payloads.append(self._payload(owner, "changed"))
            self._enqueue(payloads)
        return 204, None

    # -- webhooks --------------------------------------------------------------------------

    def webhooks(self, request: Request | None = None) -> list[dict[str, Any]]:
        """The registrations (without their secrets)."""
        with self.lock:
            return [{k: v for k, v in w.items() if k != "secret"} for w in self._webhooks.values()]

    def _create_webhook(self, request: Request):
        self._authorize(request)
        body = request.json()
        if not isinstance(body, dict) or not body.get("url") or not body.get("entityType"):
            raise HTTPError(400, {"error": 'the body must be {"url": ..., "entityType": ...}'})
        with self.lock:
            hook_id = secrets.token_hex(8)
            hook = {"id": hook_id, "url": str(body["url"]),
                    "entityType": str(body["entityType"]),
                    "secret": str(body.get("secret") or secrets.token_urlsafe(32)),
                    "headers": dict(body.get("headers") or {})}
            self._webhooks[hook_id] = hook
        return 201, hook

    def _delete_webhook(self, request: Request):
        self._authorize(request)
        with self.lock:
            if self._webhooks.pop(request.params["id"], None) is None:
                raise HTTPError(404, {"error": "no such webhook"})
        return 204, None

    def _payload(self, eid: str, kind: str) -> tuple[str, dict[str, Any]]:
        entity = self.store.entities[eid]
        relationship = self.store.set_of[eid].startswith("Relationship_")
        prefix = "Relationship" if relationship else "Entity"
        word = {"created": "Creation", "changed": "Update", "deleted": "Deletion"}[kind]
        payload = {"type": f"{prefix}{word}Mutation", "entityType": entity["_Type"],
                   "relationshipId" if relationship else "entityId": eid}
        return entity["_Type"], payload

    def _notify(self, changes: list[tuple[str, str]]) -> None:
        self._enqueue([self._payload(eid, kind) for eid, kind in changes])

    def _enqueue(self, payloads: list[tuple[str, dict[str, Any]]]) -> None:
        from syncd_tribe.webhooks import type_matches

        for entity_type, payload in payloads:
            for hook in self._webhooks.values():
                if type_matches(entity_type, [hook["entityType"]]):
                    self.sender.put(hook, {"webhookId": hook["id"], "payload": payload})

    # -- life cycle, stats -----------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        with self.lock:
            out["persons"] = len(self.store.members["Relation_Person"])
            out["webhooks"] = len(self._webhooks)
            out["list_requests"] = dict(self.list_requests)
            out["empty_pages"] = dict(self.empty_pages)
        out["tokens_issued"] = self.tokens.issued
        return out

    def client_of(self, request: Request) -> str:
        return TokenIssuer.bearer(request) or request.environ.get("REMOTE_ADDR", "?")

    # -- fixtures and accessors -----------------------------------------------------------

    def seed(self, count: int, seed: int = 0) -> None:
        """``count`` persons, each contact at one of ``count // 10`` organisations, with
        labels; written straight into the store (no webhooks fire)."""
        with self.lock:
            seed_store(self.store, count, seed)

    def mutate(self, rng: random.Random) -> str:
        from syncd_tribe.emulator_seed import mutate

        return mutate(self, rng)

    def api_session(self) -> requests.Session:
        """A session authenticated with the emulator's own client credentials."""
        token = requests.post(f"{self.url}/oauth2/token", data={
            "grant_type": "client_credentials", "client_id": self.client_id,
            "client_secret": self.client_secret}, timeout=10).json()["access_token"]
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        return session

