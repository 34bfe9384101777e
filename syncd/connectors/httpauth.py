"""How :class:`syncd.connectors.httpclient.HttpClient` authenticates: a static token or OAuth2 client
credentials cached until shortly before expiry."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import requests
import structlog

from syncd.config.schema import Secret
from syncd.exceptions import AuthError

if TYPE_CHECKING:
    from syncd.connectors.httpclient import HttpClient

log = structlog.get_logger("syncd.connectors.httpclient")

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class Auth:
    """Adds credentials to a request; ``invalidate`` forgets a token the server refused."""

    def headers(self, client: HttpClient) -> dict[str, str]:
        return {}

    def invalidate(self) -> None:
        pass


class StaticToken(Auth):
    def __init__(self, token: Secret, header: str = "Authorization", scheme: str = "Bearer"):
        self.token, self.header, self.scheme = token, header, scheme

    def headers(self, client: HttpClient) -> dict[str, str]:
        value = self.token.reveal()
        return {self.header: f"{self.scheme} {value}" if self.scheme else value}


class ClientCredentials(Auth):
    """OAuth2 client credentials, cached until shortly before expiry.

    ``body`` is ``"form"`` (RFC 6749, Tribe) or ``"json"`` (APSIS One).
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: Secret,
        *,
        body: str = "form",
        scope: str | None = None,
        extra: Mapping[str, str] | None = None,
        refresh_margin: float = 60.0,
        default_lifetime: float = 3600.0,
    ):
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.body = body
        self.scope = scope
        self.extra = dict(extra or {})
        self.refresh_margin = refresh_margin
        self.default_lifetime = default_lifetime
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()
        self.fetches = 0

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def headers(self, client: HttpClient) -> dict[str, str]:
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires_at:
                self._fetch(client)
            return {"Authorization": f"Bearer {self._token}"}

    def _fetch(self, client: HttpClient) -> None:
        data = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.client_secret.reveal(),
            **self.extra,
        }
        if self.scope:
            data["scope"] = self.scope
        kwargs: dict[str, Any] = {"json": data} if self.body == "json" else {"data": data}
        response = client.send_raw("POST", self.token_url, auth=False, scope="token", **kwargs)
        if response.status_code >= 400:
            detail = _error_text(response)
            raise AuthError(
                f"token request to {self.token_url} failed with {response.status_code}: "
                f"{detail}",
                status=response.status_code,
                retryable=response.status_code in RETRY_STATUSES,
                endpoint=f"POST {_path_of(self.token_url)}",
                detail=detail,
            )
        payload = response.json()
        self.fetches += 1
        self._token = payload["access_token"]
        lifetime = float(payload.get("expires_in") or self.default_lifetime)
        margin = min(self.refresh_margin, lifetime / 4)
        self._expires_at = time.monotonic() + lifetime - margin


def _error_text(response: requests.Response, limit: int = 300) -> str:
    """A short, secret-free description of an error body."""
    try:
        body = response.json()
    except ValueError:
        return (response.text or response.reason or "")[:limit]
    if isinstance(body, dict):
        if "error_description" in body:
            return str(body.get("error_description"))[:limit]
        if isinstance(body.get("error"), dict):
            err = body["error"]
            return str(err.get("message") or err.get("code"))[:limit]
        if "title" in body or "detail" in body:
            return " - ".join(str(body[k]) for k in ("title", "detail") if body.get(k))[:limit]
        if "error" in body:
            return str(body["error"])[:limit]
    return str(body)[:limit]


def _path_of(url: str) -> str:
    """The path of a URL without its query string (queries may carry filters with e-mails)."""
    if "://" in url:
        url = url.split("://", 1)[1]
        url = "/" + url.split("/", 1)[1] if "/" in url else "/"
    return url.split("?", 1)[0]
