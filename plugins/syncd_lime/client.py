"""A thin client of the Lime CRM REST API over :class:`syncd.connectors.httpclient.HttpClient`.

Auth, rate budget, retries and Retry-After are ``HttpClient``'s; this module knows Lime's
URLs, the HAL list shape and paging (:mod:`syncd_lime.paging`).

Every request the Lime connector sends, and what backs it (sections of ``shared/apis.md``;
where it says [GAP] or [INFER], the connector option and the emulator switch that cover it):

=====================================================  ==========================================
Request (who sends it)                                 Backed by
=====================================================  ==========================================
Header ``X-API-Key: <key>`` on every request;          2.1 [DOC, CODE n8n credentials]; Accept:
``Accept: application/hal+json, application/json``;    a public example client [CODE]; never sent
JSON bodies                                            off the configured host (next links)
``GET /api/v1/`` (``check``)                           2.1 credential test [CODE]
``GET /api/v1/limetype/``, ``GET /api/v1/limetype/     2.1 limetype API [CODE]; the document's
{name}/`` (``check_schema``)                           shape [GAP]: read as a dict or a list of
                                                       properties; emulator ``limetype_shape``
``GET /api/v1/limeobject/{type}/?_limit=N&_offset=k    2.2 [CODE]; max ``_limit`` [GAP]: paging.py,
&_sort=_id[&min-<changed_since_property>=t]``          emulator ``page_cap``, ``next_links``,
(``read_page``: full sync, daily creation)             ``ignore_offset``; ``_timestamp`` filter
                                                       [INFER]: option ``changed_since_property``
``_links.next`` followed (same host only)              2.2 [CODE]: loop on ``_links.next.href``
``GET /api/v1/limeobject/{type}/{id}/`` (read-back,    2.2 get one [CODE]; 404 = gone
``read_record``, consents of a message)
``GET …/company/?min-_id=a&max-_id=b`` (a page's      2.2 ``min-``/``max-`` [CODE]; on ``_id``
companies, ids close together), else ``GET …/company/  [INFER]: a 400 falls back to one GET each,
{id}/`` each (for ``company.*`` paths)                 emulator ``system_filters``; cached
                                                       ``company_cache_seconds`` (companies.py)
``GET …/person/?company=<id>`` (company events)        2.2 property filters [CODE]
``GET …/consent/?min-person=a&max-person=b&_sort=_id`` 2.2 ``min-``/``max-`` [CODE]; on a relation
(a page's consents), ``?person=<id>`` (a few persons)  id [INFER]: a 400 falls back to one list
                                                       per person, emulator ``relation_ranges``;
                                                       2.4 names: the ``consent_*`` options
``GET …/consenttype/?_sort=_id``                       2.4 consent types [DOC]
``POST …/consent/``, ``PUT …/consent/{id}/``           2.2 create/partial update [DOC]; 2.4 never
(``write_consents``)                                   deleted, only ``approved=false`` [DOC]
``GET …/person/?<group filter>`` (``read_group``)      2.2 filters; saved lists [GAP]: ``groups``
``GET|POST /api/v1/subscription/``, ``PUT /api/v1/     2.3 [DOC]; the list's shape [GAP]: a list
subscription/{id}`` (``ensure_webhook``)               or HAL; emulator ``subscription_shape``
429 retried, ``Retry-After`` honoured when sent        2.5 3,000/5 min/IP [DOC]: option
                                                       ``requests_per_second``; 429 and its
                                                       Retry-After [GAP]: emulator ``retry_after``
=====================================================  ==========================================
"""

from __future__ import annotations

import builtins  # the class has a method ``list``: its annotations say builtins.list
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

from syncd.plugin import HttpClient, RateBudget, RemoteError, Secret, StaticToken
from syncd_lime.paging import PageState, next_page

API = "api/v1"


def as_secret(value: Any) -> Secret | None:
    if value is None or isinstance(value, Secret):
        return value
    return Secret(str(value))


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        port = -1
    return scheme, (parts.hostname or "").lower(), port


class LimeClient:
    """One connection's API client; thread-safe (``HttpClient`` is)."""

    def __init__(self, options: Mapping[str, Any], name: str = "lime"):
        key = as_secret(options.get("api_key"))
        if key is None:
            raise ValueError("a Lime connection needs an api_key")
        rate = float(options.get("requests_per_second") or 0)
        concurrency = int(options.get("concurrency") or 4)
        self.http = HttpClient(
            options["base_url"], auth=StaticToken(key, header="X-API-Key", scheme=""),
            timeout=float(options.get("timeout") or 30.0),
            max_attempts=int(options.get("max_attempts") or 6),
            budget=RateBudget(rate, burst=max(1.0, min(rate, concurrency * 2.0)))
            if rate > 0 else None,
            pool_size=max(4, concurrency * 2), user_agent="syncd-lime", name=name)
        self.http.session.headers["Accept"] = "application/hal+json, application/json"
        #: True once the server sent a ``_links.next``: then a page without one is the end
        self.sends_next = False

    def close(self) -> None:
        self.http.close()

    # -- limeobjects -------------------------------------------------------------------------

    @staticmethod
    def object_url(limetype: str, oid: Any = None) -> str:
        return f"{API}/limeobject/{limetype}/" + (f"{oid}/" if oid is not None else "")

    def list(self, limetype: str, *, limit: int, offset: int = 0, sort: str | None = "_id",
             filters: list[tuple[str, Any]] | None = None) -> dict[str, Any]:
        """One page: the HAL answer."""
        params: list[tuple[str, Any]] = list(filters or [])
        params.append(("_limit", int(limit)))
        if offset:
            params.append(("_offset", int(offset)))
        if sort:
            params.append(("_sort", sort))
        return self.http.get(self.object_url(limetype) + "?" + urlencode(params)).json()

    def follow(self, link: str) -> dict[str, Any]:
        """GET a ``_links.next`` href, only on the configured API's scheme, host and port."""
        base = self.http.base_url
        target = urljoin(base + "/", link)
        if _origin(target) != _origin(base):
            raise RemoteError(
                f"the server sent a next link to {urlsplit(target).hostname}, not to the "
                f"configured API {urlsplit(base).hostname}: syncd does not send its API key "
                f"elsewhere and stops this read (fix: set base_url to the host the API names "
                f"itself by)", retryable=False)
        return self.http.get(target).json()

    def page(self, limetype: str, state: PageState, *, limit: int,
             filters: builtins.list[tuple[str, Any]] | None = None
             ) -> tuple[builtins.list[dict[str, Any]], PageState | None]:
        def query(offset: int) -> dict[str, Any]:
            return self.list(limetype, limit=limit, offset=offset, filters=filters)

        rows, nxt = next_page(state, query, self.follow, what=f"the {limetype} list",
                              trust_no_next=self.sends_next)
        if nxt is not None and nxt.link:
            self.sends_next = True  # this server pages with next links: no next is the end
        return rows, nxt

    def iterate(self, limetype: str, *, page_size: int = 200,
                filters: builtins.list[tuple[str, Any]] | None = None
                ) -> Iterator[dict[str, Any]]:
        """Every object that matches, by ``_id``, paged to the end (see paging.py)."""
        state: PageState | None = PageState()
        while state is not None:
            rows, state = self.page(limetype, state, limit=page_size, filters=filters)
            yield from rows

    def get(self, limetype: str, oid: Any) -> dict[str, Any] | None:
        """One object, or None when it does not exist (404)."""
        response = self.http.get(self.object_url(limetype, oid), ok=(404,))
        return None if response.status_code == 404 else response.json()

    def create(self, limetype: str, values: Mapping[str, Any]) -> dict[str, Any]:
        return self.http.post(self.object_url(limetype), json=dict(values)).json()

    def update(self, limetype: str, oid: Any, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Partial update: only the changed properties."""
        response = self.http.put(self.object_url(limetype, oid), json=dict(changes))
        return response.json() if response.content else {}

    # -- limetypes ---------------------------------------------------------------------------

    def limetypes(self) -> builtins.list[str]:
        data = self.http.get(f"{API}/limetype/").json()
        items: Any = data
        if isinstance(data, Mapping):
            items = (data.get("_embedded") or {}).get("limetypes") \
                or (data.get("_links") or {}).get("limetype") or data.get("limetypes") or []
        names = []
        for item in items if isinstance(items, list) else []:
            name = item.get("name") if isinstance(item, Mapping) else item
            if isinstance(name, str):
                names.append(name)
        return names

    def limetype(self, name: str) -> dict[str, dict[str, Any]] | None:
        """``{property: {"type": ..., "relation": {"limetype": ...}?}}``, None for 404."""
        response = self.http.get(f"{API}/limetype/{name}/", ok=(404,))
        if response.status_code == 404:
            return None
        props = response.json().get("properties") or {}
        if isinstance(props, list):
            props = {p["name"]: p for p in props if isinstance(p, Mapping) and "name" in p}
        return {str(k): dict(v) if isinstance(v, Mapping) else {"type": v}
                for k, v in props.items()}

    # -- subscriptions -----------------------------------------------------------------------

    def subscriptions(self) -> builtins.list[dict[str, Any]]:
        data = self.http.get(f"{API}/subscription/").json()
        if isinstance(data, Mapping):
            data = (data.get("_embedded") or {}).get("subscriptions") or data.get("items") or []
        return [s for s in data if isinstance(s, dict)]  # JSON objects

    def subscribe(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.http.post(f"{API}/subscription/", json=dict(body)).json()

    def update_subscription(self, sid: Any, changes: Mapping[str, Any]) -> dict[str, Any]:
        response = self.http.put(f"{API}/subscription/{sid}", json=dict(changes))
        return response.json() if response.content else {}

    def stats(self) -> dict[str, int]:
        return {"requests": self.http.requests_sent, "retries": self.http.retries}
