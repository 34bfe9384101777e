"""Parts of an emulator with no server in them: the faults it injects and the tokens it issues.

:mod:`syncd.web.emulator` re-exports both; see its docstring for what each fault does.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

from syncd.web.wsgi import Request


@dataclass
class Faults:
    error_rate: float = 0.0  # share of requests answered 500/502/503
    throttle_rate: float = 0.0  # share answered 429 with Retry-After
    retry_after: float = 1.0  # seconds given in Retry-After
    hang_rate: float = 0.0  # share that hang for hang_seconds, then answer 504
    hang_seconds: float = 30.0
    latency: float = 0.0  # seconds added to every answer
    fail_next: list[int] = field(default_factory=list)  # statuses for the next requests
    #: "applied, then failed": the write is committed, then its answer is lost
    fail_after_rate: float = 0.0  # share of writes answered 500/502/503 after applying them
    fail_after_next: list[int] = field(default_factory=list)  # 5xx; 504 hang; 0 drop
    fail_after_path: str = ""  # only writes whose path contains this ("": any write)


class TokenIssuer:
    """Bearer tokens with a lifetime. ``lifetime`` may be changed at any time."""

    def __init__(self, lifetime: float = 3600.0, prefix: str = "tok"):
        self.lifetime = lifetime
        self.prefix = prefix
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()
        self.issued = 0

    def issue(self) -> tuple[str, float]:
        token = f"{self.prefix}_{secrets.token_urlsafe(24)}"
        with self._lock:
            self._tokens[token] = time.time() + self.lifetime
            self.issued += 1
        return token, self.lifetime

    def valid(self, token: str | None) -> bool:
        if not token:
            return False
        with self._lock:
            expires = self._tokens.get(token)
        return expires is not None and time.time() < expires

    def expire_all(self) -> None:
        with self._lock:
            self._tokens.clear()

    @staticmethod
    def bearer(request: Request) -> str | None:
        value = request.header("Authorization") or ""
        if value[:7].lower() == "bearer ":
            return value[7:].strip()
        return None
