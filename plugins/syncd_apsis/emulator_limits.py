"""Tokens and budgets of the APSIS One emulator: JWT-looking bearer tokens with ``exp`` and
token buckets that say how long a caller must wait (the ``Retry-After`` of a 429)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
import time

from syncd.plugin import TokenIssuer


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class JwtIssuer(TokenIssuer):
    """Expiring bearer tokens that look like JWTs (HS256, claims incl. ``exp``)."""

    def __init__(self, lifetime: float = 86400.0):
        super().__init__(lifetime, prefix="")
        self._key = secrets.token_bytes(32)

    def issue(self, subject: str = "syncd") -> tuple[str, float]:
        now = time.time()
        expires = now + self.lifetime
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        claims = _b64(json.dumps({"iss": "apsis-one-emulator", "sub": subject, "iat": int(now),
                                  "exp": math.ceil(expires), "jti": secrets.token_hex(8)})
                      .encode())
        signature = _b64(hmac.new(self._key, f"{header}.{claims}".encode(),
                                  hashlib.sha256).digest())
        token = f"{header}.{claims}.{signature}"
        with self._lock:
            self._tokens[token] = expires
            self.issued += 1
        return token, self.lifetime


class Bucket:
    """A token bucket; ``take()`` returns 0 when allowed, else the seconds until it would be."""

    def __init__(self, rate: float, burst: float | None = None):
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, rate))
        self.tokens = self.burst
        self.stamp = time.monotonic()

    def take(self) -> float:
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate
