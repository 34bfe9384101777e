"""The shared HTTP client against a real (tiny) emulator: retries, Retry-After, token refresh."""

import threading
import time

import pytest

from syncd.config.schema import Secret
from syncd.connectors.httpclient import ClientCredentials, HttpClient, RateBudget, parse_retry_after
from syncd.exceptions import RemoteError
from syncd.web.emulator import Emulator, TokenIssuer
from syncd.web.wsgi import HTTPError


class Tiny(Emulator):
    kind = "tiny"

    def setup_routes(self, router):
        self.tokens = TokenIssuer(lifetime=3600)
        router.add("POST", "/token", self.token)
        router.add("GET", "/thing", self.thing)
        router.add("GET", "/missing", lambda r: (_ for _ in ()).throw(HTTPError(404, None)))

    def token(self, request):
        form = request.form()
        if form.get("client_secret") != "s3cret":
            raise HTTPError(401, {"error": "invalid_client", "error_description": "bad secret"})
        token, lifetime = self.tokens.issue()
        return {"access_token": token, "expires_in": lifetime, "token_type": "bearer"}

    def thing(self, request):
        if not self.tokens.valid(TokenIssuer.bearer(request)):
            raise HTTPError(401, None)
        return {"ok": True}


@pytest.fixture
def tiny():
    with Tiny(seed=1) as emu:
        yield emu


def client(emu, secret="s3cret", **kw):
    auth = ClientCredentials(f"{emu.url}/token", "id", Secret(secret))
    kw.setdefault("backoff", 0.01)
    return HttpClient(emu.url, auth=auth, **kw)


def test_retry_after_is_honoured_by_every_thread(tiny):
    c = client(tiny)
    tiny.set_faults(fail_next=[429, 429], retry_after=0.3)
    results = []

    def call():
        results.append(c.get("/thing").json())

    start = time.monotonic()
    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [{"ok": True}] * 6
    assert time.monotonic() - start >= 0.3
    assert tiny.stats()["retry_after_violations"] == 0


def test_5xx_is_retried_until_it_succeeds(tiny):
    c = client(tiny)
    tiny.set_faults(fail_next=[500, 503, 502])
    assert c.get("/thing").json() == {"ok": True}
    assert c.retries == 3


def test_expired_token_is_refreshed_once(tiny):
    c = client(tiny)
    c.get("/thing")
    tiny.tokens.expire_all()
    assert c.get("/thing").json() == {"ok": True}
    assert c.auth.fetches == 2


def test_bad_secret_is_an_auth_error_without_the_secret(tiny):
    c = client(tiny, secret="wrong-secret-value")
    with pytest.raises(RemoteError) as info:
        c.get("/thing")
    assert "bad secret" in str(info.value)
    assert "wrong-secret-value" not in str(info.value)


def test_4xx_is_not_retried(tiny):
    c = client(tiny)
    with pytest.raises(RemoteError) as info:
        c.get("/missing")
    assert info.value.status == 404 and not info.value.retryable
    assert c.retries == 0


def test_exhausted_retries_are_retryable_errors(tiny):
    c = client(tiny, max_attempts=2)
    tiny.set_faults(error_rate=1.0)
    with pytest.raises(RemoteError) as info:
        c.get("/thing")
    assert info.value.retryable


def test_hang_past_the_timeout_is_retried(tiny):
    c = client(tiny, timeout=0.2)
    tiny.set_faults(hang_rate=1.0, hang_seconds=0.5)
    t = threading.Timer(0.3, lambda: tiny.set_faults(hang_rate=0.0))
    t.start()
    assert c.get("/thing").json() == {"ok": True}
    t.join()


def test_rate_budget_spaces_requests():
    budget = RateBudget(rate=50, burst=1)
    start = time.monotonic()
    for _ in range(11):
        budget.acquire()
    assert time.monotonic() - start >= 0.18


def test_parse_retry_after():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("garbage") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_a_requests_exception_shows_its_type_and_path_never_its_message(tiny, caplog):
    """A token with a line break makes requests raise InvalidHeader quoting the header value;
    what syncd reports is the type and the path only (no query string, no header value)."""
    from syncd.connectors.httpclient import StaticToken

    c = HttpClient(tiny.url, auth=StaticToken(Secret("tok\nleaked-part")), backoff=0.01)
    with pytest.raises(RemoteError) as caught:
        c.get("/thing?email=someone@example.org")
    text = str(caught.value)
    assert text == "GET /thing: InvalidHeader"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert not caught.value.retryable
    assert tiny.stats()["requests"] == 0  # nothing was sent


def test_a_refused_connection_is_retried_and_reported_without_its_message(tiny):
    url = tiny.url
    tiny.stop()
    c = HttpClient(url, max_attempts=2, backoff=0.01, connect_timeout=0.5)
    with pytest.raises(RemoteError) as caught:
        c.get("/thing?token=abc")
    assert caught.value.retryable
    assert str(caught.value).endswith("GET /thing: ConnectionError")
    assert "abc" not in str(caught.value) and "127.0.0.1" not in str(caught.value)
    assert c.retries == 1


def test_a_hold_taken_while_a_request_waits_for_the_budget_holds_it_too(tiny):
    """Two threads pass the Retry-After gate together; one is answered 429 + Retry-After
    while the other still waits for the rate budget: that one must wait out the hold too."""
    c = client(tiny, budget=RateBudget(5, burst=1))
    c.auth.headers(c)  # the token first: its request is not part of the race
    tiny.reset_stats()
    tiny.set_faults(fail_next=[429], retry_after=0.5)
    threads = [threading.Thread(target=c.get, args=("/thing",)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = tiny.stats()
    assert stats["by_status"] == {"200": 2, "429": 1}
    assert stats["retry_after_violations"] == 0


def test_clients_sharing_holds_wait_for_each_others_retry_after(tiny):
    from syncd.connectors.httpclient import Holds

    holds = Holds()
    a, b = client(tiny, holds=holds), client(tiny, holds=holds)
    a.get("/thing"), b.get("/thing")
    tiny.set_faults(fail_next=[429], retry_after=0.4)
    assert a.get("/thing", ok=(429,)).status_code == 429  # not retried: a holds the account
    assert holds.remaining() > 0.3
    b.get("/thing")  # the other client waits for it
    assert tiny.stats()["retry_after_violations"] == 0
    assert holds.remaining() == 0
    holds.hold(0.3, scope="export")  # a narrower scope holds only its own requests
    assert holds.remaining("") == 0 and holds.remaining("export") > 0.2
