"""The APSIS One API client: auth, budgets, retries and the endpoints the connector uses.

Built on :class:`syncd.connectors.httpclient.HttpClient`, which brings pooling, the account budget, retries with
back-off and ``Retry-After`` honoured across threads. This module adds what is APSIS':

- OAuth client credentials with a **JSON** body (``apis.md`` 3.1), see
  :mod:`syncd_apsis.token`: the token is cached for its life (the JWT ``exp``), in memory and,
  given ``token_file``, across restarts (the token endpoint allows only 10 requests a minute).
  A 401 drops the token and re-authenticates (HttpClient does that); a 403 does the same once,
  as APSIS' own connectors do (``HTTP_CODES_FORCE_GENERATE_TOKEN = [401, 403]``);
- a per-profile-key budget (10 requests/s per key, ``apis.md`` 3.8) spent on every attempt of
  a request that names a profile, next to the account budget;
- URL-encoded profile keys in paths (``a%40a.com``);
- definitions: keyspaces, sections, attributes (discriminator + version id), topics, tags;
- one set of ``Retry-After`` holds (:class:`syncd.connectors.httpclient.Holds`) for the account, shared by
  the profile, export and import clients: a 429 holds every request of the account, checked
  right before each request leaves, except the 429s of the endpoints whose limits are their
  own (the export request's 1 a minute, scope ``export``; the import request's 10 a minute
  and 3 pending, scope ``import``; the token endpoint's 10 a minute, scope ``token``), which
  hold only their endpoint.

Errors are RFC 7807 problem+json; their ``title``/``detail`` end up in :class:`RemoteError`
messages (``syncd.connectors.httpclient`` formats them). Secrets never reach a message, a log or a repr.

Every request the connector sends, and what backs its method, path, headers and body
(``apis.md`` sections; a GAP names the option or emulator switch that covers it). Common to
all: ``Authorization: Bearer`` (3.1), ``Accept: application/problem+json,
application/json`` (errors are problem+json, 3.8), path segments URL-encoded (3.3 [CODE]),
429 / ``Retry-After`` (3.8; the header's presence and a 429's scope are GAPs: emulator
``send_retry_after`` and ``key_429_scope``; without the header: exponential back-off),
401/403 -> new token once (3.1 [CODE]).

- ``POST /oauth/token``, ``Content-Type: application/json``, ``{"grant_type":
  "client_credentials", "client_id", "client_secret"}``; no bearer: 3.1 [DOC]; expiry from
  the JWT ``exp`` (3.1 [DOC]).
- ``GET /audience/keyspaces``, ``GET /audience/sections``, ``GET
  /audience/sections/{section}/attributes``, ``GET /v2/audience/sections/{section}/topics``,
  ``GET /audience/sections/{section}/consent-lists[/{list}/topics]`` (preflight,
  :mod:`syncd_apsis.definitions`): 3.2 [DOC]/[CODE]; the answers' shape is a GAP
  (:func:`items_of` takes ``{"items"}``, ``{"data"}`` or a bare list; the emulator's
  ``consent_v2`` switch for unmigrated accounts). ``GET /audience/sections/{section}/tags``:
  3.5 says "Get all tags" exists, its path is inferred [GAP] (preflight only).
- ``PATCH /v2/audience/keyspaces/{ks}/profiles/{key}/sections/{section}/attributes``,
  ``Content-Type: application/merge-patch+json``, ``Accept: application/problem+json``, body
  by attribute discriminator, ``null`` clears; 404 = no such profile (v2 never creates):
  3.3 [DOC].
- ``PATCH /audience/keyspaces/{ks}/profiles/{key}/sections/{section}/attributes`` (v1, creates
  the profile), ``Content-Type: application/merge-patch+json``, body by attribute version
  id: 3.3 [DOC]/[CODE] (the vendor's client: "Content must follow JSON Merge Patch specs").
- ``DELETE .../sections/{section}/attributes/{version_id}``: 3.3 [CODE].
- ``POST /v2/audience/keyspaces/{ks}/profiles/{key}/sections/{section}/consents``, JSON
  ``{"topic_discriminator", "channel_discriminator", "type", "reason", "source"}``; 201/204,
  409 = already so: 3.4 [DOC]/[CODE]. The channel strings are [INFER]: options
  ``email_channel`` / ``sms_channel``, emulator switch ``channels``.
- ``GET /v2/.../consents?consent_types=opt-out`` (an unsubscribe without a topic): 3.4 [DOC].
- ``PATCH /audience/keyspaces/{ks}/profiles/{key}/sections/{section}/tags``,
  ``Content-Type: application/merge-patch+json``, ``{"<tag>": true|false}``: 3.5 [INFER]
  (path and body; tags also go through imports, 3.7 [DOC]).
- ``DELETE /audience/keyspaces/{ks}/profiles/{key}``: 3.7 [CODE]; its success status is a
  GAP (any 2xx; 404 = already gone).
- ``PUT /audience/profiles/merges``, JSON ``{"profiles": [{"keyspace_discriminator",
  "profile_key"} x 2]}``, 409 on conflict: 3.7 [CODE].
- ``POST /emails/reports`` (path [INFER] from the page slug), JSON ``{"start_at", "end_at",
  "attributes"}``; ``GET /emails/reports/{report_id}``; ``GET`` of ``file_download_url``
  (the bearer only to the API's host): 3.6 [DOC]. The file's crm-id and topic columns are
  GAPs: options ``export_crm_id_column`` / ``export_topic_column`` (a row without a topic is
  resolved through the profile's opt-outs), emulator switches ``export_topic_column`` /
  ``export_attribute_columns``. Limit 1 a minute (3.6 [DOC]): scope ``export``.
- ``POST /v2/audience/sections/{section}/imports``, JSON mappings and options (names beyond
  ``keyspace_mappings[].keyspace_discriminator`` are a GAP, as the emulator has them);
  ``PUT`` of the pre-signed ``file_upload_url``, ``Content-Type: text/csv``, no bearer; ``GET
  /audience/sections/{section}/imports/{import_id}``: 3.7 [DOC]. Limits 10 a minute, 3
  pending (3.7 [DOC]): scope ``import``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import requests

from syncd.plugin import AuthError, HttpClient, KeyedRateBudget, RateBudget, RemoteError, Secret
from syncd_apsis.client_jobs import (
    PROBLEM,
    ExportsAndImports,
    segment,
)
from syncd_apsis.token import ApsisToken, jwt_expiry

__all__ = ["ApsisClient", "ApsisToken", "jwt_expiry", "segment", "items_of"]

MERGE_PATCH = "application/merge-patch+json"


#: Path segments that follow these name a thing of the account: templated in errors.
_PLACEHOLDERS = {"keyspaces": "{keyspace}", "profiles": "{key}", "sections": "{section}",
                 "attributes": "{version_id}", "imports": "{import_id}",
                 "reports": "{report_id}", "tags": "{tag}"}


def endpoint_template(path: str) -> str:
    """A request path as a template for messages: ``/audience/keyspaces/{keyspace}/profiles/
    {key}/sections/{section}/attributes`` (no profile key, e-mail address or id in it)."""
    parts = path.split("?", 1)[0].split("/")
    out = list(parts)
    for i in range(1, len(parts)):
        previous = parts[i - 1]
        if not parts[i] or previous not in _PLACEHOLDERS:
            continue
        if previous == "profiles" and out[i - 2] != "{keyspace}":
            continue  # /audience/profiles/merges
        out[i] = _PLACEHOLDERS[previous]
    return "/".join(out)


def items_of(payload: Any) -> list[dict]:
    """The list of a definitions answer: ``{"items": [...]}`` or a bare list."""
    if isinstance(payload, dict):
        payload = payload.get("items", payload.get("data", []))
    return [item for item in payload or [] if isinstance(item, dict)]


class _ApsisHttp(HttpClient):
    """HttpClient that also spends a per-profile-key budget on each attempt that names one
    (``rate_key=...``), after the Retry-After gate so that a held request does not burst."""

    def __init__(self, base_url: str, *, key_budget: KeyedRateBudget, **kwargs: Any):
        super().__init__(base_url, **kwargs)
        self.key_budget = key_budget

    def send_raw(self, method: str, url: str, *, auth: bool = True,
                 rate_key: str | None = None, **kwargs: Any) -> requests.Response:
        if rate_key is not None:
            self._wait_gate(kwargs.get("scope", ""))
            self.key_budget.acquire(rate_key)
        return super().send_raw(method, url, auth=auth, **kwargs)


class ApsisClient(ExportsAndImports):
    """One connection's APSIS One API client. Thread-safe."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: Secret,
        *,
        requests_per_second: float = 100.0,
        per_profile_per_second: float = 10.0,
        timeout: float = 30.0,
        max_attempts: int = 6,
        pool_size: int = 16,
        backoff: float = 0.5,
        name: str = "apsis",
        token_file: str | None = None,
    ):
        if not isinstance(client_secret, Secret):
            client_secret = Secret(str(client_secret))
        self.base_url = base_url.rstrip("/")
        self.auth = ApsisToken(f"{self.base_url}/oauth/token", client_id, client_secret,
                               cache_file=token_file)
        # Half a second's worth of burst: the server's bucket starts counting when our first
        # request *arrives*, so a full burst could look early to it by a network jitter.
        self.key_budget = KeyedRateBudget(per_profile_per_second,
                                          burst=max(1.0, per_profile_per_second / 2))
        self.http = _ApsisHttp(
            self.base_url,
            key_budget=self.key_budget,
            auth=self.auth,
            timeout=timeout,
            max_attempts=max_attempts,
            backoff=backoff,
            budget=RateBudget(requests_per_second, burst=max(1.0, requests_per_second / 2)),
            pool_size=pool_size,
            name=name,
        )
        self.reauth_403 = 0
        #: The e-mail event export's own client (its own pool), under the same holds: a 429
        #: of the account holds exports too; the 429 of the export request's own limit (1 a
        #: minute, scope ``export``) holds only export requests.
        self.exports_http = HttpClient(
            self.base_url, auth=self.auth, timeout=timeout, max_attempts=max_attempts,
            backoff=backoff, budget=self.http.budget, pool_size=2, name=f"{name}-exports",
            holds=self.http.holds)
        #: Profile imports' own client, under the same holds: the 429 of an import request's
        #: own limits (10 a minute, 3 pending; scope ``import``) holds only import requests.
        self.imports_http = HttpClient(
            self.base_url, auth=self.auth, timeout=max(timeout, 120.0),
            max_attempts=max_attempts, backoff=backoff, budget=self.http.budget, pool_size=2,
            name=f"{name}-imports", holds=self.http.holds)

    def __repr__(self) -> str:
        return f"ApsisClient(base_url={self.base_url!r}, client_id={self.auth.client_id!r})"

    def close(self) -> None:
        self.http.close()
        self.exports_http.close()
        self.imports_http.close()

    def holds_remaining(self, scope: str = "") -> float:
        """Seconds before a request of ``scope`` may leave (a Retry-After being waited out)."""
        return self.http.holds.remaining(scope)

    def stats(self) -> dict[str, int]:
        clients = (self.http, self.exports_http, self.imports_http)
        return {"requests": sum(c.requests_sent for c in clients),
                "retries": sum(c.retries for c in clients),
                "token_fetches": self.auth.fetches, "tokens_reused": self.auth.reused,
                "reauth_on_403": self.reauth_403}

    # -- sending -----------------------------------------------------------------------------

    def request(self, method: str, path: str, *, rate_key: str | None = None,
                ok: tuple[int, ...] = (), **kwargs: Any) -> requests.Response:
        """Send with retries; a 403 drops the token and tries once more with a fresh one."""
        headers = {"Accept": f"{PROBLEM}, application/json", **kwargs.pop("headers", {})}
        kwargs.setdefault("endpoint", endpoint_template(path))
        if rate_key is not None:
            kwargs["rate_key"] = rate_key
        try:
            return self.http.request(method, path, ok=ok, headers=headers, **kwargs)
        except AuthError:
            raise
        except RemoteError as exc:
            if exc.status != 403 or 403 in ok:
                raise
        self.reauth_403 += 1
        self.auth.invalidate()
        return self.http.request(method, path, ok=ok, headers=headers, **kwargs)

    def authenticate(self) -> None:
        """Make sure a token is cached (fetches one only if there is none)."""
        self.auth.headers(self.http)

    # -- definitions -------------------------------------------------------------------------

    def keyspaces(self) -> list[dict]:
        return items_of(self.request("GET", "/audience/keyspaces").json())

    def sections(self) -> list[dict]:
        return items_of(self.request("GET", "/audience/sections").json())

    def attributes(self, section: str) -> list[dict]:
        """The section's attribute definitions: ``discriminator`` and ``version_id`` each."""
        path = f"/audience/sections/{segment(section)}/attributes"
        return items_of(self.request("GET", path).json())

    def attribute_versions(self, section: str) -> dict[str, str]:
        """Attribute discriminator -> version id, for v1 writes."""
        out: dict[str, str] = {}
        for item in self.attributes(section):
            disc = item.get("discriminator")
            version = item.get("version_id")
            if version is None and item.get("versions"):  # GAP: tolerate a versions list
                last = item["versions"][-1]
                version = last.get("version_id", last.get("id")) if isinstance(last, dict) \
                    else last
            if disc and version is not None:
                out[str(disc)] = str(version)
        return out

    def topics(self, section: str) -> list[dict]:
        return items_of(self.request("GET", f"/v2/audience/sections/{segment(section)}/topics")
                        .json())

    def tags(self, section: str) -> list[dict]:
        # GAP: "Get all tags" exists; its path is inferred.
        return items_of(self.request("GET", f"/audience/sections/{segment(section)}/tags")
                        .json())

    # -- profiles ----------------------------------------------------------------------------

    @staticmethod
    def profile_path(keyspace: str, key: str, version: int = 1) -> str:
        prefix = "/v2" if version == 2 else ""
        return f"{prefix}/audience/keyspaces/{segment(keyspace)}/profiles/{segment(key)}"

    @staticmethod
    def rate_key(keyspace: str, key: str) -> str:
        return f"{keyspace}\n{key}"

    def patch_attributes(self, keyspace: str, key: str, section: str,
                         attributes: Mapping[str, Any]) -> bool:
        """v2 merge-patch by discriminator (``None`` clears). False when the profile does not
        exist (v2 never creates one)."""
        path = f"{self.profile_path(keyspace, key, 2)}/sections/{segment(section)}/attributes"
        response = self._merge_patch(path, self.rate_key(keyspace, key), dict(attributes),
                                     ok=(404,), accept=PROBLEM)
        return response.status_code != 404

    def put_attributes_v1(self, keyspace: str, key: str, section: str,
                          by_version: Mapping[str, Any]) -> None:
        """v1 PATCH by attribute version id: creates the profile when it does not exist."""
        path = f"{self.profile_path(keyspace, key)}/sections/{segment(section)}/attributes"
        self._merge_patch(path, self.rate_key(keyspace, key), dict(by_version))

    def _merge_patch(self, path: str, rate_key: str, body: Mapping[str, Any], *,
                     ok: tuple[int, ...] = (), accept: str | None = None) -> requests.Response:
        """A PATCH whose body is a JSON Merge Patch (RFC 7396): ``Content-Type:
        application/merge-patch+json`` always (``apis.md`` 3.3), ``Accept`` as documented."""
        headers = {"Content-Type": MERGE_PATCH}
        if accept is not None:
            headers["Accept"] = accept
        return self.request("PATCH", path, rate_key=rate_key, ok=ok,
                            data=json.dumps(body).encode(), headers=headers)

    def delete_attribute(self, keyspace: str, key: str, section: str, version_id: str) -> None:
        path = (f"{self.profile_path(keyspace, key)}/sections/{segment(section)}/attributes/"
                f"{segment(version_id)}")
        self.request("DELETE", path, rate_key=self.rate_key(keyspace, key), ok=(404,))

    def add_consent(self, keyspace: str, key: str, section: str, *, topic: str, channel: str,
                    type: str, reason: str = "", source: str = "syncd") -> str:
        """Consent 2.0. Returns ``"created"`` (201), ``"updated"`` (204) or ``"unchanged"``
        (409: the transition is not supported, typically the same type is already set)."""
        path = f"{self.profile_path(keyspace, key, 2)}/sections/{segment(section)}/consents"
        body = {"topic_discriminator": topic, "channel_discriminator": channel, "type": type,
                "reason": reason, "source": source}
        response = self.request("POST", path, rate_key=self.rate_key(keyspace, key), ok=(409,),
                                json=body)
        return {201: "created", 409: "unchanged"}.get(response.status_code, "updated")

    def consents(self, keyspace: str, key: str, section: str,
                 types: tuple[str, ...] = ()) -> list[dict]:
        path = f"{self.profile_path(keyspace, key, 2)}/sections/{segment(section)}/consents"
        params = [("consent_types", t) for t in types]
        return items_of(self.request("GET", path, rate_key=self.rate_key(keyspace, key),
                                     params=params).json())

    def set_tags(self, keyspace: str, key: str, section: str, tags: Mapping[str, bool]) -> None:
        # INFER (apis.md 3.5): merge-patch of {tag discriminator: true|false}.
        path = f"{self.profile_path(keyspace, key)}/sections/{segment(section)}/tags"
        self._merge_patch(path, self.rate_key(keyspace, key),
                          {str(k): bool(v) for k, v in tags.items()})

    def delete_profile(self, keyspace: str, key: str) -> bool:
        """Permanent. True when it existed (404 counts as deleted: False)."""
        response = self.request("DELETE", self.profile_path(keyspace, key),
                                rate_key=self.rate_key(keyspace, key), ok=(404,))
        return response.status_code != 404

    def merge(self, first: tuple[str, str], second: tuple[str, str]) -> None:
        """Merge two keys into one profile (missing ones are created; 409 on a conflict)."""
        body = {"profiles": [{"keyspace_discriminator": ks, "profile_key": key}
                             for ks, key in (first, second)]}
        self.request("PUT", "/audience/profiles/merges", json=body)


class UnknownAttribute(Exception):
    pass
