"""Receiver limits: 64 KiB bodies by default, a cap on open connections, rejection logs that
are rate-limited and cut short while the counts per reason stay exact."""

from __future__ import annotations

import select
import socket

import requests
import structlog
from receiver_support import Notified, body_of, hmac_parser, sign

from syncd.config.model import ReceiverConfig
from syncd.config.sections import RECEIVER_OPTIONS
from syncd.exceptions import WebhookRejected
from syncd.testing import wait_for
from syncd.web.receiver import LogLimiter, Route, WebhookApp, start_receiver


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def post(url, body: bytes, connection: str = "crm", signature: str | None = None):
    return requests.post(f"{url}/webhooks/{connection}", data=body, timeout=10,
                         headers={"X-Signature": sign(body) if signature is None else signature})


def serve(store, routes=None, **kw):
    app = WebhookApp(store=store, max_body=kw.pop("max_body", ReceiverConfig().max_body_bytes),
                     notify=Notified(store), **kw)
    app.set_routes(routes or {"crm": Route("crm", hmac_parser, ("to_apsis",))})
    return app


def test_default_body_limit_is_64_kib(store):
    assert ReceiverConfig().max_body_bytes == 65536
    assert {o.name: o.default for o in RECEIVER_OPTIONS}["max_body_bytes"] == 65536
    app = serve(store)
    srv = start_receiver(app, "127.0.0.1", 0, threads=2)
    try:
        ok = body_of(["a"], pad="x" * 60_000)
        assert post(srv.url, ok).status_code == 200
        big = body_of(["b"], pad="x" * 66_000)
        assert post(srv.url, big).status_code == 413
    finally:
        srv.stop()
    assert [i.event.record_id for i in store.pending("to_apsis")] == ["a"]
    assert app.stats()["reasons"] == {"too_large": 1}


def test_rejection_logs_are_rate_limited_per_reason_and_counts_stay_exact(store):
    clock = Clock()
    app = serve(store, log_limiter=LogLimiter(lines=3, interval=60.0, clock=clock))
    srv = start_receiver(app, "127.0.0.1", 0, threads=2)
    body = body_of(["p1"])
    try:
        with structlog.testing.capture_logs() as logs:
            for _ in range(20):
                assert post(srv.url, body, signature="bad").status_code == 401
            for _ in range(5):
                assert post(srv.url, body, connection="nope").status_code == 404
        lines = [e for e in logs if e["event"] == "webhook.rejected"]
        assert [e["code"] for e in lines] == ["rejected_401"] * 3 + ["unknown_connection"] * 3
        clock.now += 60.0  # a new interval: the next line says how many were held back
        with structlog.testing.capture_logs() as logs:
            assert post(srv.url, body, signature="bad").status_code == 401
        (line,) = [e for e in logs if e["event"] == "webhook.rejected"]
        assert line["not_logged_before"] == 17
    finally:
        srv.stop()
    stats = app.stats()
    assert stats["rejected"] == {401: 21, 404: 5}
    assert stats["reasons"] == {"rejected_401": 21, "unknown_connection": 5}
    assert store.pending_count() == 0


def test_rejection_log_lines_are_cut_short(store):
    def wordy(headers, body):
        raise WebhookRejected(400, "bad field: " + body.decode())  # a parser quoting the body

    app = serve(store, routes={"crm": Route("crm", wordy, ("to_apsis",))})
    srv = start_receiver(app, "127.0.0.1", 0, threads=2)
    long_name = "n" * 5000
    try:
        with structlog.testing.capture_logs() as logs:
            assert post(srv.url, b"z" * 20_000).status_code == 400
            assert post(srv.url, b"{}", connection=long_name).status_code == 404
    finally:
        srv.stop()
    first, second = [e for e in logs if e["event"] == "webhook.rejected"]
    assert len(first["reason"]) < 250 and "z" * 250 not in repr(logs)
    assert len(second["connection"]) < 130 and len(second["reason"]) < 250
    assert store.pending_count() == 0


def _request(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    return sock


def test_open_connections_are_capped(store):
    app = serve(store)
    srv = start_receiver(app, "127.0.0.1", 0, threads=2, connection_limit=2)
    try:
        held = [_request(srv.port) for _ in range(2)]
        for sock in held:  # answered, and kept open (HTTP/1.1 keep-alive)
            assert b"200" in sock.recv(4096).split(b"\r\n", 1)[0]
        assert wait_for(lambda: len(srv.server.active_channels) == 2, timeout=10)
        third = _request(srv.port)
        readable, _, _ = select.select([third], [], [], 0.5)
        assert readable == [] and len(srv.server.active_channels) == 2  # waits in the backlog
        held[0].close()
        assert b"200" in third.recv(4096).split(b"\r\n", 1)[0]  # served once one closed
        for sock in (held[1], third):
            sock.close()
    finally:
        srv.stop()


def test_a_connection_whose_integrations_are_all_disabled_answers_503(store):
    app = serve(store, routes={"crm": Route("crm", hmac_parser, (), disabled=("main",))})
    srv = start_receiver(app, "127.0.0.1", 0, threads=2)
    try:
        resp = post(srv.url, body_of(["p1", "p2"]))
        assert resp.status_code == 503 and int(resp.headers["Retry-After"]) > 0
        assert post(srv.url, body_of(["p3"]), signature="bad").status_code == 401  # auth first
        assert post(srv.url, body_of([], kind="ignored")).status_code == 200  # nothing to keep
        app.set_routes({"crm": Route("crm", hmac_parser, ("main",))})  # enabled again
        assert post(srv.url, body_of(["p1", "p2"])).status_code == 200  # the sender's retry
    finally:
        srv.stop()
    assert [i.event.record_id for i in store.pending("main")] == ["p1", "p2"]
    assert app.stats()["reasons"] == {"integrations_disabled": 1, "rejected_401": 1}
