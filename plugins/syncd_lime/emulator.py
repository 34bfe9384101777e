"""An emulator of the Lime CRM REST API (apis.md 2.6): a real HTTP server on loopback.

- Every ``/api/v1/`` request needs ``X-API-Key`` (2.1 [DOC, CODE]; header names are
  case-insensitive): 401 otherwise. ``GET /api/v1/`` answers a valid key (the vendor node's
  credential test).
- Limetype API (2.1): ``GET /api/v1/limetype/`` and ``GET /api/v1/limetype/{name}/`` (404 for
  a limetype the instance lacks).
- Limeobject API (2.2): ``GET /api/v1/limeobject/{type}/`` as HAL (``_embedded.limeobjects``,
  ``_links.self``/``next``) with ``_limit``/``_offset``/``_sort``/``min-``/``max-``/``not-``
  (see :mod:`.emulator_store`; an unknown property or option is a 400); ``GET``/``PUT``
  (partial)/``DELETE`` ``…/{type}/{id}/``; ``POST …/{type}/`` (201); ``GET
  …/{type}/{id}/{relation}/`` lists a has-many relation. Consents are never deleted by the
  add-on's rules, but the API allows it, as Lime does.
- ``GET /api/v1/query/?q=<json>`` minimal (``limetype``, ``responseFormat.object``,
  ``limit``, ``offset``, ``orderBy``; a ``filter`` is a 400: its DSL is a GAP).
- Subscriptions (2.3 [DOC]): ``GET /api/v1/subscription/available/``, ``GET|POST
  /api/v1/subscription/`` (POST ``{"events", "target_url", "secret"?, "name"?}``; an event
  not available is a 400), ``GET|PUT|DELETE /api/v1/subscription/{id}`` (PUT partial, with
  ``enabled``). Every change made through the API (and :meth:`LimeEmulator.restore`) is
  delivered to the enabled subscriptions of its event, signed ``X-Lime-Signature:
  sha256=<hex>``, with ``original_values`` (the changed fields' old values) on update.
- The per-IP budget (2.5 [DOC]: 3,000 requests per 5 minutes): a sliding window per client
  address, ``request_budget`` requests per ``budget_window`` seconds; over it, 429.

Switches where apis.md says [GAP] or [INFER] (constructor arguments, also settable with
``POST /_emulator/settings``; the connector tests run against each setting):

- ``page_cap`` (2.2 "Max ``_limit``: [GAP]"): None serves ``_limit`` rows (default 50);
  N serves at most N a page;
- ``next_links`` (2.2: clients page on ``_links.next`` [CODE]): True sends ``next`` while
  rows remain; False never sends it (a server whose capped pages say nothing);
- ``ignore_offset``: the server ignores ``_offset`` (a broken server or proxy: every page is
  the first; the client must fail, not loop);
- ``retry_after`` (2.5: whether a 429 carries ``Retry-After`` is a GAP): True sends the
  seconds until the window has room, False a bare 429;
- ``limetype_shape`` (2.1: the limetype document's shape is a GAP): ``"dict"`` gives
  ``properties`` as ``{name: {type, relation?}}``, ``"list"`` as ``[{name, type, ...}]``;
- ``subscription_shape`` (2.3: the list's shape is a GAP): ``"list"`` a JSON array,
  ``"hal"`` ``{"_embedded": {"subscriptions": [...]}}``;
- ``consent_addon``: False serves an instance without the consent add-on (no ``consent`` or
  ``consenttype`` limetype, no ``person.consent`` relation);
- ``system_filters`` (2.2: filters are documented on properties [CODE]; on system fields
  such as ``_id`` and ``_timestamp`` they are an INFER): True filters on them too, False
  answers such a filter with 400 (sorting by ``_id`` stays allowed);
- ``relation_ranges`` (2.2: ``min-``/``max-`` are shown on dates [CODE]; on a belongs-to
  relation's id they are an INFER): True compares the ids, False answers 400.

Limetypes ``history`` (``note``, ``date``, ``type``, ``externalid``, ``person``,
``coworker``) and ``todo`` (``subject``, ``description``, ``duedate``, ``externalid``,
``person``, ``coworker``) receive response data and tasks: such limetypes are app-specific
(2.2 [INFER]) and ``externalid`` is invented (Lime documents no external id; syncd's
``external_id_property`` names it).

Control API besides :mod:`syncd.web.emulator`'s: ``POST /_emulator/settings``.
"""

from __future__ import annotations

import json
import random
import secrets
import time
from collections import deque
from typing import Any
from urllib.parse import urlencode

import requests

from syncd.plugin import Emulator, HTTPError, Request, Router
from syncd_lime.emulator_sender import Sender
from syncd_lime.emulator_store import CONSENT_ADDON, HASMANY, QueryError, Store
from syncd_lime.emulator_subscriptions import Subscriptions

API = "/api/v1"
SETTINGS = ("page_cap", "next_links", "ignore_offset", "retry_after", "limetype_shape",
            "subscription_shape", "request_budget", "budget_window", "system_filters",
            "relation_ranges")
DEFAULT_LIMIT = 50
WHATS = ("new", "update", "delete", "restore")


class LimeEmulator(Subscriptions, Emulator):
    kind = "lime"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, seed: int | None = None,
                 threads: int = 16, api_key: str = "sandbox-lime-key",
                 webhook_secret: str = "sandbox-lime-webhook-secret",
                 page_cap: int | None = None, next_links: bool = True,
                 ignore_offset: bool = False, retry_after: bool = True,
                 limetype_shape: str = "dict", subscription_shape: str = "list",
                 request_budget: int = 3000, budget_window: float = 300.0,
                 consent_addon: bool = True, system_filters: bool = True,
                 delivery_attempts: int = 5,
                 delivery_backoff: float = 0.2):
        self.api_key = api_key
        #: The secret ``sandbox_config`` gives syncd (it registers its subscription with it).
        self.webhook_secret = webhook_secret
        self.page_cap = page_cap
        self.next_links = next_links
        self.ignore_offset = ignore_offset
        self.retry_after = retry_after
        self.limetype_shape = limetype_shape
        self.subscription_shape = subscription_shape
        self.request_budget = request_budget
        self.budget_window = budget_window
        self.store = Store()
        self.store.system_filters = system_filters
        if not consent_addon:
            self.store.drop_limetypes(CONSENT_ADDON)
        self.subscriptions: dict[int, dict[str, Any]] = {}
        self._sub_ids = iter(range(1, 1 << 30))
        self._windows: dict[str, deque[float]] = {}
        self.list_requests: dict[str, int] = {}
        self.empty_pages: dict[str, int] = {}
        self.sender: Sender = Sender(delivery_attempts, delivery_backoff)
        super().__init__(host, port, seed=seed, threads=threads)

    # -- routes ----------------------------------------------------------------------------

    def setup_routes(self, router: Router) -> None:
        def api(method: str, path: str, handler) -> None:
            def guarded(request: Request):
                self._admit(request)
                try:
                    return handler(request)
                except QueryError as exc:
                    raise HTTPError(400, {"error": str(exc)}) from None
            router.add(method, API + path, guarded)

        api("GET", "/", lambda r: {"_links": {"limetype": {"href": f"{self.url}{API}/limetype/"},
                                              "limeobject": {"href": f"{self.url}{API}/limeobject/"}}})
        api("GET", "/limetype/", self._limetypes)
        api("GET", "/limetype/{name}/", self._limetype)
        api("GET", "/limeobject/{type}/", self._list)
        api("POST", "/limeobject/{type}/", self._create)
        api("GET", "/limeobject/{type}/{id}/", self._get)
        api("PUT", "/limeobject/{type}/{id}/", self._update)
        api("DELETE", "/limeobject/{type}/{id}/", self._delete)
        api("GET", "/limeobject/{type}/{id}/{relation}/", self._related)
        api("GET", "/query/", self._query)
        api("GET", "/subscription/available/", lambda r: self.available_events())
        api("GET", "/subscription/", self._subscriptions)
        api("POST", "/subscription/", self._subscribe)
        for path in ("/subscription/{id}", "/subscription/{id}/"):
            api("GET", path, lambda r: self._subscription(r.params["id"], public=True))
            api("PUT", path, self._update_subscription)
            api("DELETE", path, self._unsubscribe)
        router.add("POST", "/_emulator/settings", self._settings)

    # switches the store applies to its queries
    system_filters = property(lambda self: self.store.system_filters,
                              lambda self, v: setattr(self.store, "system_filters", bool(v)))
    relation_ranges = property(lambda self: self.store.relation_ranges,
                               lambda self, v: setattr(self.store, "relation_ranges", bool(v)))

    def _settings(self, request: Request) -> dict:
        body = request.json() or {}
        for key in SETTINGS:
            if key in body:
                setattr(self, key, body[key])
        return {key: getattr(self, key) for key in SETTINGS}

    def _admit(self, request: Request) -> None:
        """The per-IP budget (every request counts, as at Lime's edge), then the API key."""
        now = time.monotonic()
        wait = 0.0
        with self._stats_lock:
            window = self._windows.setdefault(self.client_of(request), deque())
            while window and window[0] <= now - self.budget_window:
                window.popleft()
            if len(window) >= self.request_budget:
                wait = window[0] + self.budget_window - now
            else:
                window.append(now)
        if wait > 0:
            if self.retry_after:
                raise self.throttle(request, float(max(1, int(wait + 0.999))))
            raise HTTPError(429, {"error": "Too many requests"})
        key = request.header("X-API-Key")
        if not key or not secrets.compare_digest(key.encode(), self.api_key.encode()):
            raise HTTPError(401, {"error": "missing or invalid API key"})

    def client_of(self, request: Request) -> str:
        return request.environ.get("REMOTE_ADDR", "?")

    # -- limetypes -------------------------------------------------------------------------

    def _limetypes(self, request: Request):
        return {"_embedded": {"limetypes": [
            {"name": n, "_links": {"self": {"href": f"{self.url}{API}/limetype/{n}/"}}}
            for n in self.store.limetypes]},
            "_links": {"self": {"href": f"{self.url}{API}/limetype/"}}}

    def _limetype(self, request: Request):
        name = request.params["name"]
        self._need(name)
        return self.store.limetype_doc(name, self.url, self.limetype_shape)

    def _need(self, limetype: str) -> None:
        if limetype not in self.store.limetypes:
            raise HTTPError(404, {"error": f"no limetype {limetype!r}"})

    # -- limeobjects -----------------------------------------------------------------------

    def _list(self, request: Request):
        limetype = request.params["type"]
        self._need(limetype)
        params = _pairs(request)
        options = dict(p for p in params if p[0] in ("_limit", "_offset"))
        try:
            limit = int(options.get("_limit", DEFAULT_LIMIT))
            offset = 0 if self.ignore_offset else int(options.get("_offset", 0))
        except ValueError:
            raise HTTPError(400, {"error": "_limit and _offset are integers"}) from None
        if limit < 1 or offset < 0:
            raise HTTPError(400, {"error": "_limit must be positive, _offset not negative"})
        served = min(limit, self.page_cap) if self.page_cap else limit
        with self.lock:
            rows = self.store.query(limetype, params)
            page = [self.store.render(limetype, o, self.url) for o in rows[offset:offset + served]]
            self.list_requests[limetype] = self.list_requests.get(limetype, 0) + 1
            if not page:
                self.empty_pages[limetype] = self.empty_pages.get(limetype, 0) + 1
        base = f"{self.url}{API}/limeobject/{limetype}/"
        filters = [p for p in params if p[0] not in ("_limit", "_offset")]
        links: dict[str, Any] = {"self": {"href": base + "?" + urlencode(params)}}
        if self.next_links and offset + len(page) < len(rows):
            links["next"] = {"href": base + "?" + urlencode(
                [*filters, ("_limit", limit), ("_offset", offset + len(page))])}
        return 200, {"_embedded": {"limeobjects": page}, "_links": links}, None, \
            "application/hal+json"

    def _object(self, limetype: str, oid: str) -> dict[str, Any]:
        self._need(limetype)
        try:
            return self.store.objects[limetype][int(oid)]
        except (KeyError, ValueError):
            raise HTTPError(404, {"error": f"no {limetype} with id {oid}"}) from None

    def _get(self, request: Request):
        limetype = request.params["type"]
        with self.lock:
            obj = self._object(limetype, request.params["id"])
            return 200, self.store.render(limetype, obj, self.url), None, "application/hal+json"

    def _related(self, request: Request):
        limetype, relation = request.params["type"], request.params["relation"]
        with self.lock:
            obj = self._object(limetype, request.params["id"])
            kind = self.store.kind(limetype, relation)
            if not isinstance(kind, tuple):
                raise HTTPError(404, {"error": f"{relation!r} is not a relation"})
            target = kind[1]
            if kind[0] == HASMANY:
                back = next(p for p, k in self.store.limetypes[target].items()
                            if isinstance(k, tuple) and k[1] == limetype and k[0] != HASMANY)
                rows = [o for o in self.store.objects[target].values()
                        if o.get(back) == obj["_id"]]
            else:
                rows = [self.store.objects[target][obj[relation]]] if obj.get(relation) else []
            page = [self.store.render(target, o, self.url) for o in rows]
        return 200, {"_embedded": {"limeobjects": page}, "_links": {}}, None, \
            "application/hal+json"

    def _create(self, request: Request):
        limetype = request.params["type"]
        self._need(limetype)
        with self.lock:
            obj = self.create(limetype, self.store.check_body(limetype, request.json()))
            return 201, self.store.render(limetype, obj, self.url), None, "application/hal+json"

    def _update(self, request: Request):
        limetype = request.params["type"]
        with self.lock:
            obj = self._object(limetype, request.params["id"])
            self.update(limetype, obj["_id"], self.store.check_body(limetype, request.json()))
            return 200, self.store.render(limetype, obj, self.url), None, "application/hal+json"

    def _delete(self, request: Request):
        limetype = request.params["type"]
        with self.lock:
            obj = self._object(limetype, request.params["id"])
            self.delete(limetype, obj["_id"])
        return 204, None

    def _query(self, request: Request):
        try:
            q = json.loads(request.arg("q") or "")
        except ValueError:
            raise HTTPError(400, {"error": "q must be a JSON query"}) from None
        if not isinstance(q, dict) or q.get("filter"):
            raise HTTPError(400, {"error": "this server supports no query filter"})
        limetype = str(q.get("limetype"))
        self._need(limetype)
        wanted = list((q.get("responseFormat") or {}).get("object") or {"_id": ""})
        order = [f"{'-' if str(d).upper() == 'DESC' else ''}{k}"
                 for o in q.get("orderBy") or [] for k, d in o.items()] or ["_id"]
        with self.lock:
            rows = self.store.query(limetype, [("_sort", ",".join(order))])
            offset, limit = int(q.get("offset") or 0), int(q.get("limit") or 50)
            return {"objects": [{k: o.get(k) for k in wanted}
                                for o in rows[offset:offset + limit]]}

    # -- changes (through the API or the helpers below), and their webhooks ------------------

    def create(self, limetype: str, values: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            obj = self.store.create(limetype, values)
            self._notify(limetype, "new", obj)
            return obj

    def update(self, limetype: str, oid: int, values: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            original = self.store.update(limetype, oid, values)
            obj = self.store.objects[limetype][oid]
            self._notify(limetype, "update", obj, original)
            return obj

    def delete(self, limetype: str, oid: int) -> None:
        with self.lock:
            self._notify(limetype, "delete", self.store.delete(limetype, oid))

    def restore(self, limetype: str, oid: int) -> None:
        """Restore a deleted object (as from Lime's trash): fires ``<limetype>.restore``."""
        with self.lock:
            self._notify(limetype, "restore", self.store.restore(limetype, oid))

    def available_events(self) -> list[str]:
        return [f"{t}.{w}" for t in self.store.limetypes for w in WHATS]

    def _notify(self, limetype: str, what: str, obj: dict[str, Any],
                original: dict[str, Any] | None = None) -> None:
        event = f"{limetype}.{what}"
        body: dict[str, Any] = {"id": obj["_id"], "limetype": limetype,
                                "values": self.store.hook_values(limetype, obj)}
        if what == "update":
            body["original_values"] = dict(original or {})
        for sub in self.subscriptions.values():
            if sub["enabled"] and event in sub["events"]:
                self.sender.put(sub, {"event": event, "body": body})

    def webhooks(self) -> list[dict[str, Any]]:
        with self.lock:
            return [self._public(s) for s in self.subscriptions.values()]

    # -- life cycle, stats, fixtures ---------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        with self.lock:
            out["persons"] = len(self.store.objects["person"])
            out["subscriptions"] = len(self.subscriptions)
            out["list_requests"] = dict(self.list_requests)
            out["empty_pages"] = dict(self.empty_pages)
        return out

    def seed(self, count: int, seed: int = 0) -> None:
        from syncd_lime.emulator_seed import seed_store

        with self.lock:
            seed_store(self.store, count, seed)

    def mutate(self, rng: random.Random) -> str:
        from syncd_lime.emulator_seed import mutate

        return mutate(self, rng)

    def api_session(self) -> requests.Session:
        session = requests.Session()
        session.headers["X-API-Key"] = self.api_key
        return session

    def consents_of(self, person: int) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(c) for c in self.store.objects.get("consent", {}).values()
                    if c.get("person") == int(person)]


def _pairs(request: Request) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(request.query_string, keep_blank_values=True)
