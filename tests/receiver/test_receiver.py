"""The webhook receiver over real HTTP: persisted before 2xx, bad input refused and not queued."""

from __future__ import annotations

import sqlite3
import threading

import pytest
import requests
import structlog
from receiver_support import MAX_BODY, SECRET, body_of, hmac_parser, sign

from syncd.engine.store import Store, StoreError
from syncd.exceptions import WebhookRejected
from syncd.records import Event
from syncd.web.receiver import Route


def post(server, body: bytes, connection: str = "crm", signature: str | None = None,
         **kwargs) -> requests.Response:
    headers = {"X-Signature": sign(body) if signature is None else signature,
               "Content-Type": "application/json"}
    return requests.post(f"{server.url}/webhooks/{connection}", data=body, headers=headers,
                         timeout=10, **kwargs)


def stored(store: Store) -> int:
    return store.pending_count()


def test_accepted_webhook_is_stored_for_every_integration_before_the_200(server, store,
                                                                         notified):
    resp = post(server, body_of([11, 12]))

    assert resp.status_code == 200
    assert resp.json() == {"accepted": 2}
    # committed before the answer: readable the moment the 200 arrived
    assert store.pending_count("to_apsis") == 2
    assert store.pending_count("to_outlook") == 2
    items = store.pending("to_apsis")
    assert [(i.connection, i.event.record_id, i.event.kind) for i in items] == [
        ("crm", "11", "changed"), ("crm", "12", "changed")]
    assert notified.event.wait(5)
    assert notified.calls == [["to_apsis", "to_outlook"]]
    assert notified.pending_seen == [{"to_apsis": 2, "to_outlook": 2}]


def test_event_kind_and_headers_reach_the_parser_case_insensitively(server, app, store):
    seen = {}

    def parser(headers, body):
        seen.update(sig=headers["x-signature"], sig2=headers.get("X-SIGNATURE"),
                    has="X-Signature" in headers)
        return hmac_parser(headers, body)

    app.set_routes({"crm": Route("crm", parser, ("to_apsis",))})
    body = body_of(["a"], kind="created")
    assert post(server, body).status_code == 200
    assert seen == {"sig": sign(body), "sig2": sign(body), "has": True}
    assert store.pending("to_apsis")[0].event.kind == "created"


def test_zero_events_answer_200_and_store_nothing(server, store, notified):
    resp = post(server, body_of([], kind="ignored"))

    assert resp.status_code == 200
    assert resp.json() == {"accepted": 0}
    assert stored(store) == 0
    assert notified.calls == []


def test_a_connection_no_integration_consumes_stores_nothing(server, app, store):
    app.set_routes({"crm": Route("crm", hmac_parser, ())})
    resp = post(server, body_of([1]))
    assert resp.status_code == 200
    assert resp.json() == {"accepted": 0}
    assert stored(store) == 0


def test_bad_signature_is_401_and_not_queued(server, store, notified):
    resp = post(server, body_of([1]), signature=sign(body_of([1]), b"wrong"))
    assert resp.status_code == 401
    assert resp.json() == {"error": "bad or missing X-Signature"}
    missing = requests.post(f"{server.url}/webhooks/crm", data=body_of([1]), timeout=10)
    assert missing.status_code == 401
    assert stored(store) == 0
    assert notified.calls == []


def test_malformed_body_is_400_and_not_queued(server, store):
    resp = post(server, b"{not json")
    assert resp.status_code == 400
    assert "error" in resp.json()
    assert stored(store) == 0


def test_a_parser_crash_is_400_not_queued_and_logged_without_the_body(server, app, store):
    def crashing(headers, body):
        raise KeyError("jan@example.com")  # a message that would leak body content

    app.set_routes({"crm": Route("crm", crashing, ("to_apsis",))})
    with structlog.testing.capture_logs() as logs:
        resp = post(server, b'{"email": "jan@example.com"}')
    assert resp.status_code == 400
    assert resp.json() == {"error": "malformed webhook body"}
    assert stored(store) == 0
    assert "jan@example.com" not in repr(logs)
    assert any(e["event"] == "webhook.rejected" and e["code"] == "malformed"
               and e["error"] == "KeyError" for e in logs)


def test_a_rejection_with_a_non_4xx_status_is_still_a_4xx(server, app, store):
    def odd(headers, body):
        raise WebhookRejected(200, "nope")

    app.set_routes({"crm": Route("crm", odd, ("to_apsis",))})
    assert post(server, b"{}").status_code == 400
    assert stored(store) == 0


def test_oversized_by_content_length_is_413_before_the_parser_runs(server, app, store):
    calls = []

    def parser(headers, body):
        calls.append(len(body))
        return hmac_parser(headers, body)

    app.set_routes({"crm": Route("crm", parser, ("to_apsis",))})
    big = body_of(list(range(MAX_BODY)))
    assert len(big) > MAX_BODY
    resp = post(server, big)
    assert resp.status_code == 413
    assert stored(store) == 0
    assert calls == []


def test_oversized_chunked_body_is_413_and_not_queued(server, store):
    big = body_of(list(range(MAX_BODY)))

    def chunks():
        for i in range(0, len(big), 100):
            yield big[i:i + 100]

    resp = requests.post(f"{server.url}/webhooks/crm", data=chunks(),
                         headers={"X-Signature": sign(big)}, timeout=10)
    assert resp.request.headers.get("Transfer-Encoding") == "chunked"
    assert resp.status_code == 413
    assert stored(store) == 0


def test_small_chunked_body_is_accepted(server, store):
    body = body_of([1, 2, 3])
    resp = requests.post(f"{server.url}/webhooks/crm", data=iter([body[:5], body[5:]]),
                         headers={"X-Signature": sign(body)}, timeout=10)
    assert resp.request.headers.get("Transfer-Encoding") == "chunked"
    assert resp.status_code == 200
    assert store.pending_count("to_apsis") == 3


def test_store_error_is_503_with_retry_after_and_nothing_stored(server, app, store, notified,
                                                                monkeypatch):
    def broken(items):
        list(items)
        raise StoreError("database or disk is full")

    monkeypatch.setattr(store, "enqueue", broken)
    resp = post(server, body_of([1]))
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "5"
    monkeypatch.undo()
    assert stored(store) == 0
    assert notified.calls == []


def test_a_locked_database_is_503_not_200(server, app, tmp_path, notified):
    path = str(tmp_path / "locked.db")
    locked_store = Store(path, timeout=0.05)
    app.store = locked_store
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        resp = post(server, body_of([1]))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "5"
    assert locked_store.pending_count() == 0
    assert post(server, body_of([1])).status_code == 200  # and it recovers
    assert locked_store.pending_count() == 2
    locked_store.close()


def test_draining_refuses_new_webhooks_and_fails_health(server, app, store):
    assert requests.get(f"{server.url}/healthz", timeout=5).json() == {"status": "ok"}
    app.draining = True
    resp = post(server, body_of([1]))
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "5"
    health = requests.get(f"{server.url}/healthz", timeout=5)
    assert health.status_code == 503
    assert stored(store) == 0


def test_a_request_past_the_draining_check_finishes(server, app, store):
    inside, release = threading.Event(), threading.Event()

    def slow(headers, body):
        inside.set()
        assert release.wait(5)
        return [Event("late")]

    app.set_routes({"crm": Route("crm", slow, ("to_apsis",))})
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", post(server, b"{}")))
    t.start()
    assert inside.wait(5)
    app.draining = True
    release.set()
    t.join(10)
    assert result["r"].status_code == 200
    assert store.pending_count("to_apsis") == 1


def test_unknown_connection_is_404_and_wrong_method_405(server, store):
    assert post(server, body_of([1]), connection="nope").status_code == 404
    assert requests.get(f"{server.url}/webhooks/crm", timeout=5).status_code == 405
    assert requests.get(f"{server.url}/other", timeout=5).status_code == 404
    assert stored(store) == 0


def test_routes_are_swapped_whole(server, app, store):
    table = {"lime": Route("lime", hmac_parser, ("lime_to_apsis",))}
    app.set_routes(table)
    table["crm"] = Route("crm", hmac_parser, ("to_apsis",))  # the caller's dict was copied

    assert post(server, body_of([1]), connection="crm").status_code == 404
    assert post(server, body_of([1]), connection="lime").status_code == 200
    assert store.pending_count("lime_to_apsis") == 1


def test_a_request_in_flight_keeps_the_table_it_started_with(server, app, store):
    inside, release = threading.Event(), threading.Event()

    def slow(headers, body):
        inside.set()
        assert release.wait(5)
        return [Event("x")]

    app.set_routes({"crm": Route("crm", slow, ("old",))})
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", post(server, b"{}")))
    t.start()
    assert inside.wait(5)
    app.set_routes({"crm": Route("crm", hmac_parser, ("new",))})
    release.set()
    t.join(10)
    assert result["r"].status_code == 200
    assert store.pending_count("old") == 1
    assert store.pending_count("new") == 0


def test_a_failing_notify_never_reaches_the_sender(server, store, notified):
    notified.fail = True
    first = post(server, body_of([1]))
    assert first.status_code == 200
    assert notified.event.wait(5)
    second = post(server, body_of([2]))
    assert second.status_code == 200
    assert store.pending_count("to_apsis") == 2


def test_counters_and_logs_without_bodies_or_signatures(server, app):
    body = body_of(["secret-person-1"])
    with structlog.testing.capture_logs() as logs:
        post(server, body)
        post(server, body, signature="deadbeef")
        post(server, b"{bad")
        post(server, body, connection="nope")
    assert app.stats() == {"received": 4, "accepted": 1, "events": 1,
                           "rejected": {401: 1, 400: 1, 404: 1},
                           "reasons": {"rejected_401": 1, "rejected_400": 1,
                                       "unknown_connection": 1}}
    text = repr(logs)
    for leak in ("secret-person-1", sign(body), "deadbeef", SECRET.decode()):
        assert leak not in text
    accepted = [e for e in logs if e["event"] == "webhook.accepted"]
    assert accepted == [{"event": "webhook.accepted", "log_level": "info", "connection": "crm",
                         "status": 200, "count": 1, "parsed": 1}]
    rejected = sorted(e["status"] for e in logs if e["event"] == "webhook.rejected")
    assert rejected == [400, 401, 404]


@pytest.mark.parametrize("length", [None, "not-a-number"])
def test_body_limit_is_enforced_while_reading_without_a_content_length(app, store, length):
    import io

    class Stream(io.BytesIO):
        read_bytes = 0

        def read(self, n=-1):
            data = super().read(n)
            Stream.read_bytes += len(data)
            return data

    big = body_of(list(range(MAX_BODY)))
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/webhooks/crm",
               "wsgi.input": Stream(big), "HTTP_X_SIGNATURE": sign(big)}
    if length is not None:
        environ["CONTENT_LENGTH"] = length
    statuses = []
    b"".join(app(environ, lambda status, headers: statuses.append(status)))
    if length is None:
        assert statuses == ["413 Payload Too Large"]
        assert Stream.read_bytes <= MAX_BODY + 1
    else:
        assert statuses == ["400 Bad Request"]
    assert stored(store) == 0


def test_an_oversized_content_length_is_refused_before_reading(app, store):
    import io

    class Unreadable(io.BytesIO):
        def read(self, n=-1):
            raise AssertionError("the body was read")

    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/webhooks/crm",
               "CONTENT_LENGTH": str(MAX_BODY + 1), "wsgi.input": Unreadable()}
    statuses = []
    b"".join(app(environ, lambda status, headers: statuses.append(status)))
    assert statuses == ["413 Payload Too Large"]
    assert stored(store) == 0
