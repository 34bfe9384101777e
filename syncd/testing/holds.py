"""Retry-After as seen where requests leave the client, for tests (no grace, no server).

:class:`SentLog` wraps ``requests.adapters.HTTPAdapter.send`` (for the test's duration, by
``monkeypatch``): each request to ``base_url`` is noted as it leaves syncd's last check of
the holds (in its session's adapter), each 429 with ``Retry-After`` when its answer came
back. A request is ``early`` when it left before the Retry-After of a 429 it names in
``X-Syncd-Held-By`` (one its sender had recorded when it decided to send) ran out, by the
client's clock: a send decided while the client knew it had to wait. ``held_by`` keeps each
request's header, so a test can check that every request said what its sender knew (and so
was judged by that, not by time, by the emulator).
"""

from __future__ import annotations

import threading
import time

import pytest
from requests.adapters import HTTPAdapter

from syncd.connectors.budgets import HELD_BY, REQUEST_ID, parse_retry_after


class SentLog:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, base_url: str = ""):
        self.lock = threading.Lock()
        #: request id of each 429 with Retry-After -> until when it holds (client's clock)
        self.holds: dict[str, float] = {}
        #: (request id, seconds before the Retry-After ran out, url) of each early request
        self.early: list[tuple[str, float, str]] = []
        #: X-Syncd-Held-By of each request (None: it had none)
        self.held_by: list[str | None] = []
        original = HTTPAdapter.send

        def send(adapter, request, *args, **kwargs):
            if not (request.url or "").startswith(base_url):
                return original(adapter, request, *args, **kwargs)
            start = time.monotonic()
            known = request.headers.get(HELD_BY)
            with self.lock:
                self.held_by.append(known)
                late = [self.holds.get(k, 0.0) - start for k in (known or "").split(",")]
                if max(late, default=0.0) > 0:
                    self.early.append((request.headers.get(REQUEST_ID, ""), max(late),
                                       request.url or ""))
            response = original(adapter, request, *args, **kwargs)
            delay = parse_retry_after(response.headers.get("Retry-After"))
            if response.status_code == 429 and delay and request.headers.get(REQUEST_ID):
                with self.lock:  # 1 ms: the header's millisecond rounding
                    self.holds[request.headers[REQUEST_ID]] = time.monotonic() + delay - 0.001
            return response

        monkeypatch.setattr(HTTPAdapter, "send", send)
