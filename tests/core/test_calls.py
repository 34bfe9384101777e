"""The HTTP calls made for records (syncd.connectors.calls): what the client reports, what it
never keeps (credentials, calls made for no record), how the pools carry the marks, and the
bounded buffer the journal takes them from."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from syncd.config.schema import Secret
from syncd.connectors import calls
from syncd.connectors.httpclient import ClientCredentials, HttpClient
from syncd.exceptions import RemoteError
from syncd.plugin import PooledClient, carry_context, for_records
from syncd.testing import free_port
from syncd.web.emulator import Emulator, TokenIssuer
from syncd.web.wsgi import HTTPError

SECRET = "unit-S3CRET-51f0"


class Tiny(Emulator):
    kind = "tiny"

    def setup_routes(self, router):
        self.tokens = TokenIssuer(lifetime=3600)
        router.add("POST", "/token", self.token)
        router.add("GET", "/thing/{id}", lambda r: {"ok": True})
        router.add("PUT", "/refused", lambda r: (_ for _ in ()).throw(
            HTTPError(422, {"title": "Unprocessable", "detail": "email is not valid"})))

    def token(self, request):
        token, lifetime = self.tokens.issue()
        return {"access_token": token, "expires_in": lifetime}


@pytest.fixture
def tiny():
    with Tiny(seed=1) as emu:
        yield emu


@pytest.fixture
def buffer():
    with calls.recording("test-owner"):
        yield calls.buffer("test-owner")
    calls.forget("test-owner")


def client(emu) -> HttpClient:
    return HttpClient(emu.url, auth=ClientCredentials(f"{emu.url}/token", "id", Secret(SECRET)),
                      backoff=0.01, max_attempts=3)


def test_each_attempt_is_reported_with_status_ms_attempt_wait_and_message(tiny, buffer):
    c = client(tiny)
    c.auth.headers(c)  # the token first: the 429 is for the call
    tiny.set_faults(fail_next=[429], retry_after=0.2)
    with for_records(["r1"]):
        c.get("/thing/r1", params={"q": "a b", "access_token": SECRET})
        with pytest.raises(RemoteError):
            c.put("/refused")
    [(first, marked), (second, _), (refused, _)] = buffer.take(["r1"])
    assert marked == ("r1",)
    assert (first.method, first.status, first.attempt, first.retry_after) == ("GET", 429, 1, 0.2)
    assert (second.status, second.attempt) == (200, 2) and second.waited >= 0.19
    assert second.path == "/thing/r1?q=a b&access_token=***"  # as sent, credential removed
    assert isinstance(second.ms, int) and second.at <= time.time()
    assert (refused.status, refused.error) == (422, "Unprocessable - email is not valid")
    assert buffer.take(["r1"]) == []  # taken once


def test_calls_for_no_record_or_outside_a_capability_are_not_kept(tiny, buffer):
    c = client(tiny)
    with for_records(["r2"]):
        c.get("/thing/r2")  # fetches the token first: that one is for no record
    c.get("/thing/x")
    with for_records([]):
        c.get("/thing/y")
    assert [e.path for e, _ in buffer.take(["r2"])] == ["/thing/r2"]
    assert len(buffer) == 0
    calls.forget("test-owner")  # no buffer: a capability not recorded
    with calls.recording("elsewhere"), for_records(["r3"]):
        c.get("/thing/r3")
    assert calls.buffer("elsewhere").take(["r3"])
    calls.forget("elsewhere")


def test_a_pre_signed_url_is_shown_by_its_template_only(tiny, buffer):
    c = client(tiny)
    with for_records(["r4"]):
        c.get(f"{tiny.url}/thing/{SECRET}", auth=False, endpoint="{upload_url}")
        c.get(f"{tiny.url}/thing/{SECRET}", auth=False)
    paths = [e.path for e, _ in buffer.take(["r4"])]
    assert paths == ["{upload_url}", "{pre-signed URL}"]
    closed = f"http://127.0.0.1:{free_port()}/up/{SECRET}"  # nothing listens there
    with for_records(["r5"]), pytest.raises(RemoteError) as refused:
        HttpClient(tiny.url, max_attempts=2, backoff=0.01).put(closed, auth=False)
    [(first, _), (second, _)] = buffer.take(["r5"])
    assert (first.status, second.attempt, first.path) == (None, 2, "{pre-signed URL}")
    assert "ConnectionError" in first.error
    for text in (str(refused.value), first.error, second.error):
        assert SECRET not in text


def test_redact_drops_the_host_and_every_credential_of_the_query():
    assert calls.redact("https://u:p@h.example/a%20b?sig=1&X-Amz-Signature=2&apikey=3&n=4") \
        == "/a b?sig=***&X-Amz-Signature=***&apikey=***&n=4"
    assert len(calls.redact("/x" * 400)) == calls.PATH_LIMIT


class Pooled(PooledClient):
    kind, name, opts = "t", "t", {"concurrency": 4}

    def make_client(self):
        return self

    def close(self):
        pass


def test_the_worker_pools_carry_the_records_a_call_is_for(buffer):
    pooled = Pooled()
    pooled.start()

    def call(rid: str) -> None:
        with for_records([rid]):
            calls.report(calls.Exchange("GET", f"/{rid}", 200, 1, at=time.time()))

    def shared(n: int) -> None:  # marked by the caller, run on the pool
        calls.report(calls.Exchange("GET", f"/batch/{n}", 200, 1, at=time.time()))

    try:
        pooled.pool_map(call, ["a", "b", "c"])
        with for_records(["a", "b"]):
            pooled.pool_map(shared, [1, 2])
            with ThreadPoolExecutor(2) as own:  # a connector's own pool
                list(own.map(carry_context(shared), [3]))
                own.submit(shared, 4).result()  # not carried: not kept
    finally:
        pooled.stop()
    taken = buffer.take(["a"])
    assert [(e.path, m) for e, m in taken] == [
        ("/a", ("a",)), ("/batch/1", ("a", "b")), ("/batch/2", ("a", "b")),
        ("/batch/3", ("a", "b"))]
    assert [e.path for e, _ in buffer.take(["b", "c"])] == ["/b", "/c", "/batch/1", "/batch/2",
                                                          "/batch/3"]
    assert len(buffer) == 0  # each shared call went once every record took it


def test_the_buffer_is_bounded_by_entries_and_age():
    small = calls.CallBuffer(limit=3, max_age=60.0)
    for n in range(5):
        small.add((f"r{n}",), calls.Exchange("GET", "/", 200, 1, at=time.time()))
    assert len(small) == 3 and small.take(["r0", "r1"]) == []
    aging = calls.CallBuffer(limit=100, max_age=60.0)
    aging.add(("old",), calls.Exchange("GET", "/", 200, 1, at=time.time() - 61))
    aging.add(("new",), calls.Exchange("GET", "/", 200, 1, at=time.time()))
    assert [m for _, m in aging.take(["old", "new"])] == [("new",)]
