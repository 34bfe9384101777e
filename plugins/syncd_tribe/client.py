"""A thin client of the Tribe CRM API over :class:`syncd.connectors.httpclient.HttpClient`.

It knows OData URLs (``/v1/odata/Set``, ``Set(guid)``), query options and the
``{"value": [...]}`` collection shape, pages as :mod:`syncd_tribe.paging` says (nextLinks only
to the configured host), and leaves auth, rate budget, retries and Retry-After to
``HttpClient``.

Every request the Tribe connector sends, and what backs it (sections of ``shared/apis.md``;
where it says [GAP] or [INFER], the connector option and the emulator switch that cover it):

=====================================================  ==========================================
Request (who sends it)                                 Backed by
=====================================================  ==========================================
``POST {token_url}`` form ``grant_type=client_         1.1 token endpoint [DOC]: form-encoded,
credentials&client_id&client_secret&scope``            ``scope`` "read write" [CODE n8n]; token
(``syncd.connectors.httpclient.ClientCredentials``)                     lifetime [GAP]: ``expires_in`` honoured
Header ``Authorization: Bearer <token>`` on every      1.1 [DOC postman, CODE]; never sent off
``/v1/`` call, ``Content-Type: application/json``      the configured host (nextLinks, 8.8);
on bodies (JSON, as every 1.3/1.6 example)             bodies JSON: 1.3 examples [DOC, CODE]
``GET /v1/odata/GetCurrentEmployee()?$select=ID,       1.1 bootstrapping calls [DOC]
_Name`` (``check``)
``GET /v1/odata/$metadata`` (``check_schema``)         1.3 Metadata [DOC]
``GET /v1/odata/Relation_Person?$orderby=ID&$top=N&    1.2 entity set, 1.5 query options [DOC];
$skip=k&$count=true[&$filter=LastMutationDate ge t     page size/cap/nextLink [GAP]: paging.py,
or CreationDate ge t][&$expand=<labels>]``             emulator ``server_paging``, ``next_links``,
(``read_page``: full sync, daily creation)             ``ignore_skip``, ``result_window``; the
                                                       incremental filter 1.3/1.5 [CODE ETL]
``$expand=<labels_nav>($select=ID,<label_link_time_    1.4 person-label nav [GAP]: options
field>;$expand=<label_link_label_nav>($select=ID,      ``labels_nav``, ``label_link_*``; only when
Name))`` on persons                                    a consent/selection mapping uses labels;
                                                       emulator ``label_navs``, ``omit_navs``
``@odata.nextLink`` followed (same host only)          1.5 "tolerate a nextLink" [INFER]
``GET /v1/odata/Relation_Person?$filter=ID eq a or     1.5 ``eq``/``or`` [DOC], ``in`` refused
ID eq b ...`` (``read_records``: webhook read-back,    [DOC] (hence ``or`` chains, 4 kB each:
overviews)                                             URL limits [INFER])
``GET /v1/odata/Relation_Person(<guid>)?$expand=...``  1.3 Get [DOC]
(``read_record``, ``write_consents``)
``GET /v1/odata/Relationship_Person_Contact_Standard   1.2 contact set, 1.4 ``Person``/``Relation``
?$filter=Person/ID eq a or ...&$expand=Person(         navigations [DOC contact page]; ``Relation``
$select=ID)[,Relation]`` (joins contacts)              only when a field path reaches
                                                       ``Contact.Organization.``; former flag [GAP]:
                                                       ``former_field``
``GET /v1/odata/Relation_Person?$filter=<group>&       1.4 selections/overviews [GAP]: the
$select=ID&$orderby=ID`` (``read_group``)              ``groups`` option (an OData filter each)
``GET /v1/odata/<label_set>?$select=ID,Name``          1.4 "Entity Labels exists" [DOC]; set name
(``write_consents`` label lookup)                      [GAP]: ``label_set``
``POST /v1/odata/<label_link_set>`` ``{<owner_nav>:    1.3 create + nav binding ``{"X": {"ID":
{"ID": person}, <label_nav>: {"ID": label}}``; 409     ..}}`` [DOC]; link set [GAP]: options
= set already                                          ``label_link_*``; emulator
                                                       ``duplicate_label_links``
``DELETE /v1/odata/<label_link_set>(<guid>)``          1.3 Delete [DOC]; link set [GAP] as above
``PUT /v1/odata/Relation_Person(<guid>)``              1.3 Update (partial PUT) [DOC]; binding a
``{<labels_nav>: [{"ID": ..}, ...]}`` (no links)       collection nav [GAP]: ``label_link_label_nav
                                                       = ""``
``GET /v1/webhooks``, ``POST /v1/webhooks``            1.7 REST management [DOC]; body fields
``{"url", "entityType", "secret"}``,                   [GAP] (emulator mirrors the guess);
``DELETE /v1/webhooks/{id}`` (``ensure_webhook``)      signature header [GAP]: ``signature_header``
429/5xx retried, ``Retry-After`` honoured              1.8 rate limits [GAP], Retry-After [INFER]:
                                                       ``requests_per_second``, emulator
                                                       ``request_budget``
=====================================================  ==========================================
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import SplitResult, quote, urljoin, urlsplit

from syncd.plugin import ClientCredentials, HttpClient, RateBudget, RemoteError, Secret, StaticToken
from syncd_tribe.odata import GUID
from syncd_tribe.paging import PageState, next_page

ODATA = "v1/odata"


# -- OData literals and query strings ----------------------------------------------------------


def quote_string(value: str) -> str:
    """An OData string literal: single quotes, an embedded quote doubled."""
    return "'" + str(value).replace("'", "''") + "'"


def literal(value: Any) -> str:
    """The OData literal of a Python value (GUIDs unquoted, as OData v4 writes Edm.Guid)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    text = str(value)
    if GUID.match(text):
        return text
    return quote_string(text)


def any_of(path: str, values) -> str:
    """``path eq a or path eq b ...`` (``in`` is not supported by Tribe)."""
    return " or ".join(f"{path} eq {literal(v)}" for v in values)


def query_string(params: dict[str, Any]) -> str:
    """Encode query options; spaces become ``%20`` and ``$`` stays readable."""
    return "&".join(f"{quote(str(k), safe='$')}={quote(str(v), safe='$,()/:')}"
                    for k, v in params.items() if v is not None)


def as_secret(value: Any) -> Secret | None:
    if value is None or isinstance(value, Secret):
        return value
    return Secret(str(value))


def _origin(url: SplitResult) -> tuple[str, str, int | None]:
    scheme = url.scheme.lower()
    port = url.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (url.hostname or "").lower(), port


def _port(url: SplitResult) -> str:
    try:
        return str(_origin(url)[2])
    except ValueError:
        return "unreadable"


def key_literal(key: str) -> str:
    """``Set(key)``: a GUID as is, anything else quoted."""
    return key if GUID.match(key) else quote_string(key)


class TribeClient:
    """One connection's API client; thread-safe (``HttpClient`` is)."""

    def __init__(self, options: Mapping[str, Any], name: str = "tribe"):
        if options.get("auth", "client_credentials") == "token":
            token = as_secret(options.get("token"))
            if token is None:
                raise ValueError("auth = \"token\" needs a token")
            auth: Any = StaticToken(token)
        else:
            secret = as_secret(options.get("client_secret"))
            if secret is None:
                raise ValueError("auth = \"client_credentials\" needs a client_secret")
            auth = ClientCredentials(options["token_url"], options.get("client_id") or "",
                                     secret, body="form", scope=options.get("scope") or None)
        rate = float(options.get("requests_per_second") or 0)
        concurrency = int(options.get("concurrency") or 4)
        self.auth = auth
        self.http = HttpClient(
            options["base_url"], auth=auth, timeout=float(options.get("timeout") or 30.0),
            max_attempts=int(options.get("max_attempts") or 6),
            budget=RateBudget(rate, burst=max(1.0, min(rate, concurrency * 2.0)))
            if rate > 0 else None,
            pool_size=max(4, concurrency * 2), user_agent="syncd-tribe", name=name)

    def close(self) -> None:
        self.http.close()

    # -- OData -----------------------------------------------------------------------------

    @staticmethod
    def entity_url(entity_set: str, key: str | None = None) -> str:
        if key is None:
            return f"{ODATA}/{entity_set}"
        return f"{ODATA}/{entity_set}({quote(key_literal(key), safe='')})"

    @staticmethod
    def params(select: list[str] | str | None = None, expand: str | None = None,
               filter: str | None = None, orderby: str | None = None,
               top: int | None = None, skip: int | None = None,
               count: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if select:
            out["$select"] = select if isinstance(select, str) else ",".join(select)
        if expand:
            out["$expand"] = expand
        if filter:
            out["$filter"] = filter
        if orderby:
            out["$orderby"] = orderby
        if top is not None:
            out["$top"] = int(top)
        if skip:
            out["$skip"] = int(skip)
        if count:
            out["$count"] = "true"
        return out

    def follow(self, link: str) -> dict[str, Any]:
        """GET an ``@odata.nextLink`` and return its JSON. The bearer token goes with every
        request, so a link is followed only to the configured ``base_url``'s scheme, host and
        port (relative links resolve against it); any other fails the read."""
        return self.http.get(self.checked_link(link)).json()

    def checked_link(self, link: str) -> str:
        base = urlsplit(self.http.base_url)
        target = urlsplit(urljoin(f"{self.http.base_url}/{ODATA}/", link))
        try:
            same = _origin(target) == _origin(base)
        except ValueError:  # an unreadable port
            same = False
        if not same:
            raise RemoteError(
                f"the server sent an @odata.nextLink to {target.scheme}://{target.hostname} "
                f"(port {_port(target)}), not to the configured API {base.scheme}://"
                f"{base.hostname} (port {_port(base)}): syncd does not send its token elsewhere "
                "and stops this read (fix: set base_url to the host the API names itself "
                "by)", retryable=False)
        return target.geturl()

    def query(self, entity_set: str, **options: Any) -> dict[str, Any]:
        """One request: ``{"value": [...], "@odata.count"?, "@odata.nextLink"?}``."""
        qs = query_string(self.params(**options))
        url = self.entity_url(entity_set) + (f"?{qs}" if qs else "")
        return self.http.get(url).json()

    def iterate(self, entity_set: str, page_size: int = 500, **options: Any
                ) -> Iterator[dict[str, Any]]:
        """Every entity that matches, ordered by ID unless ``orderby`` says otherwise, paged
        as :mod:`syncd_tribe.paging` says (a short page is not the end; nextLinks to the API
        only; a server that ignores ``$skip`` fails the read). The first request asks for
        ``$count``: once that many rows came, no empty page is asked for."""
        options.pop("top", None)
        options.pop("skip", None)
        options.pop("count", None)
        options["orderby"] = options.get("orderby") or "ID"
        count: int | None = None
        state: PageState | None = PageState()

        def query(skip: int) -> dict[str, Any]:
            return self.query(entity_set, top=page_size, skip=skip, count=skip == 0,
                              **options)

        while state is not None:
            first = state.skip == 0 and state.link is None
            rows, data, state = next_page(state, query, self.follow, what=entity_set)
            if first and isinstance(data.get("@odata.count"), int):
                count = data["@odata.count"]
            yield from rows
            if state is not None and state.link is None and count is not None \
                    and state.skip >= count:
                return

    def get(self, entity_set: str, key: str, *, select: list[str] | None = None,
            expand: str | None = None) -> dict[str, Any] | None:
        """One entity by key, or None when it does not exist (404)."""
        qs = query_string(self.params(select=select, expand=expand))
        url = self.entity_url(entity_set, key) + (f"?{qs}" if qs else "")
        response = self.http.get(url, ok=(404,))
        if response.status_code == 404:
            return None
        return response.json()

    def create(self, entity_set: str, body: Mapping[str, Any], *,
               ok: tuple[int, ...] = (), attempts: int | None = None) -> dict[str, Any] | None:
        """The created entity; None when the answer is a status listed in ``ok`` (e.g. 409:
        it exists already). ``attempts=1``: not sent again after a lost answer."""
        response = self.http.post(self.entity_url(entity_set), json=dict(body), ok=ok,
                                  attempts=attempts)
        if response.status_code in ok:
            return None
        return response.json() if response.content else {}

    def update(self, entity_set: str, key: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Partial update: Tribe's PUT takes only the changed fields."""
        response = self.http.put(self.entity_url(entity_set, key), json=dict(changes))
        return response.json() if response.content else {}

    def delete(self, entity_set: str, key: str) -> bool:
        """True if it was deleted, False if it did not exist."""
        response = self.http.delete(self.entity_url(entity_set, key), ok=(404,))
        return response.status_code != 404

    def call(self, function: str, **options: Any) -> dict[str, Any]:
        """An OData function such as ``GetCurrentEmployee()``."""
        qs = query_string(self.params(**options))
        return self.http.get(f"{ODATA}/{function}" + (f"?{qs}" if qs else "")).json()

    # -- webhooks ----------------------------------------------------------------------------

    def webhooks(self) -> list[dict[str, Any]]:
        data = self.http.get("v1/webhooks").json()
        if isinstance(data, dict):
            data = data.get("value", [])
        return list(data or [])

    def create_webhook(self, url: str, entity_type: str, secret: Secret | None
                       ) -> dict[str, Any]:
        body: dict[str, Any] = {"url": url, "entityType": entity_type}
        if secret is not None:
            body["secret"] = secret.reveal()
        return self.http.post("v1/webhooks", json=body).json()

    def delete_webhook(self, webhook_id: str) -> None:
        self.http.delete(f"v1/webhooks/{quote(str(webhook_id), safe='')}", ok=(404,))

    # -- counters ----------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        return {"requests": self.http.requests_sent, "retries": self.http.retries,
                "token_fetches": getattr(self.auth, "fetches", 0)}
