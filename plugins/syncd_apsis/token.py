"""The APSIS One access token: client credentials with a JSON body (``apis.md`` 3.1), cached
for its life and kept across restarts.

- The expiry is the JWT ``exp`` claim (the docs: authoritative; ``expires_in`` kept for
  compatibility), or ``expires_in`` when it ends first or the token is no readable JWT.
- The token endpoint allows 10 requests a minute per account, so a daemon restarted often
  must not ask for a new token each time: the token is kept in a file in the state
  directory (``{state_dir}/apsis-tokens/<connection>.json``, mode 0600, written atomically)
  until it expires, together with the base URL and client id it was issued for (a token of
  another account or API is never reused). The file's content is never logged.
- A token the API refuses (401; 403 once, as APSIS' own connectors do) is dropped, file
  included, and a new one is fetched.
"""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any

import structlog

from syncd.plugin import ClientCredentials, HttpClient, Secret

log = structlog.get_logger("syncd.apsis.token")


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim (epoch seconds) of a JWT, or None when it is not a readable JWT."""
    try:
        claims = token.split(".")[1]
        claims += "=" * (-len(claims) % 4)
        exp = json.loads(base64.urlsafe_b64decode(claims)).get("exp")
        return float(exp) if exp is not None else None
    except (IndexError, ValueError, TypeError, AttributeError):
        return None


class ApsisToken(ClientCredentials):
    """Client credentials with a JSON body whose cache honours the JWT ``exp`` claim and,
    with ``cache_file``, survives restarts."""

    def __init__(self, token_url: str, client_id: str, client_secret: Secret, *,
                 cache_file: str | None = None, **kwargs: Any):
        kwargs.setdefault("default_lifetime", 86400.0)
        super().__init__(token_url, client_id, client_secret, body="json", **kwargs)
        self.cache_file = cache_file
        self.reused = 0  # tokens taken from the cache file
        if cache_file:
            self._load()

    def __repr__(self) -> str:
        return f"ApsisToken(token_url={self.token_url!r}, client_id={self.client_id!r})"

    def _fetch(self, client: HttpClient) -> None:
        super()._fetch(client)
        wall_expiry = time.time() + (self._expires_at - time.monotonic())
        exp = jwt_expiry(self._token or "")
        if exp is not None and exp < wall_expiry:
            remaining = exp - time.time()
            margin = min(self.refresh_margin, max(remaining, 0.0) / 4)
            self._expires_at = time.monotonic() + remaining - margin
            wall_expiry = exp
        self._save(wall_expiry)

    def invalidate(self) -> None:
        super().invalidate()
        if self.cache_file:
            try:
                os.unlink(self.cache_file)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("apsis.token_file_not_removed", file=self.cache_file,
                            error=type(exc).__name__)

    # -- the file ----------------------------------------------------------------------------

    def _identity(self) -> dict[str, str]:
        return {"token_url": self.token_url, "client_id": self.client_id}

    def _load(self) -> None:
        assert self.cache_file
        try:
            with open(self.cache_file, encoding="utf-8") as f:
                data = json.load(f)
            token, expires = str(data["access_token"]), float(data["expires_at"])
            same = all(data.get(k) == v for k, v in self._identity().items())
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("apsis.token_file_unreadable", file=self.cache_file,
                        error=type(exc).__name__)
            return
        exp = jwt_expiry(token)
        if exp is not None:
            expires = min(expires, exp)
        remaining = expires - time.time()
        margin = min(self.refresh_margin, max(remaining, 0.0) / 4)
        if not same or remaining <= margin:
            return
        with self._lock:
            self._token = token
            self._expires_at = time.monotonic() + remaining - margin
        self.reused += 1

    def _save(self, expires_at: float) -> None:
        if not self.cache_file or not self._token:
            return
        data = {**self._identity(), "access_token": self._token, "expires_at": expires_at}
        directory = os.path.dirname(self.cache_file) or "."
        tmp = f"{self.cache_file}.{os.getpid()}.tmp"
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.cache_file)
        except OSError as exc:  # the token still works from memory
            log.warning("apsis.token_file_not_written", file=self.cache_file,
                        error=type(exc).__name__)
