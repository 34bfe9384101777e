"""A webhook receiver for the tests of an emulator that calls webhooks (its sender, its
signature): a tiny WSGI app on loopback that records each delivery it accepts."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from syncd.web.wsgi import ServerThread


class WebhookReceiver:
    """Records ``(headers, body)`` of each POST it answers 2xx (``received``; header names
    title-cased). ``statuses``: answers given first, one per request (e.g. ``[500, 503]``
    to see a sender retry), then 200. ``with WebhookReceiver() as receiver:`` serves it on a
    free loopback port; deliveries go to :attr:`url`."""

    def __init__(self, name: str = "test-receiver"):
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.cond = threading.Condition()
        self.server = ServerThread(self, threads=2, name=name)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items()
                   if k.startswith("HTTP_")}
        with self.cond:
            status = self.statuses.pop(0) if self.statuses else 200
            if status < 300:
                self.received.append((headers, body))
            self.cond.notify_all()
        start_response(f"{status} X", [("Content-Length", "0")])
        return [b""]

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until ``count`` deliveries were received; True if so."""
        with self.cond:
            return self.cond.wait_for(lambda: len(self.received) >= count, timeout)

    @property
    def url(self) -> str:
        return f"{self.server.url}/webhooks/crm"

    def __enter__(self) -> WebhookReceiver:
        self.server.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.server.stop(timeout=2)
