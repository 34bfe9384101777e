"""Retry-After under faults, with 8 writers: no request leaves before a Retry-After has passed
(the emulator counts each one that does, per scope; the test also counts them where they
leave, in the client), whatever the 429 scope of the per-key limit (GAP switch
``key_429_scope``) and with or without the header (``send_retry_after``).

The emulator runs in the test's process: with 8 writers and its own threads sharing the GIL on
a busy machine, a request sent before a 429 can reach its handler up to ~70 ms after the 429
left, so its grace for requests in flight is 150 ms here (Retry-After 0.4 s). The client-side
count has no grace: a request that leaves after a 429 came back and before its Retry-After
ran out is counted."""

import threading
import time

import pytest
import requests

from syncd.connectors.httpclient import parse_retry_after
from syncd.records import Consent, Profile

NEWSLETTER = "com.apsis1.topics.newsletter"


def people(n):
    return [Profile(key=f"crm-{i}", email=f"p{i}@example.nl",
                    attributes={"firstname": f"P{i}"},
                    consents=[Consent(NEWSLETTER, "email", True)])
            for i in range(n)]


@pytest.mark.parametrize("key_429_scope", ["account", "key"])
@pytest.mark.parametrize("send_retry_after", [True, False])
def test_eight_writers_never_send_before_a_retry_after(make_emulator, connect, key_429_scope,
                                                       send_retry_after, monkeypatch):
    # the server allows 4 requests/s per key; syncd is told 40, so per-key 429s happen too
    emu = make_emulator(per_key_per_second=4, key_429_scope=key_429_scope,
                        send_retry_after=send_retry_after)
    emu.retry_after_grace = 0.15
    conn = connect(emu, concurrency=8, per_profile_per_second=40, max_attempts=12,
                   backoff=0.1)
    conn.client.authenticate()
    sent = ClientLog(monkeypatch)
    emu.reset_stats()
    emu.set_faults(throttle_rate=0.05, retry_after=0.4, error_rate=0.10)
    results = conn.write_profiles(people(120), set())
    results += conn.write_profiles(people(120), {f"crm-{i}" for i in range(120)})
    emu.set_faults(throttle_rate=0.0, error_rate=0.0)
    stats = emu.stats()
    assert [r for r in results if r.outcome == "failed"] == []
    assert stats["by_status"].get("429", 0) >= 5, stats  # the faults and the key limit hit
    assert sent.holds >= 3  # 429s with Retry-After came back
    assert sent.early == [], sent.early[:5]
    assert stats["retry_after_violations"] == 0, stats


class ClientLog:
    """Where requests leave the client: a request that starts after a 429 with Retry-After
    came back, and before that Retry-After ran out, is early (no grace: measured where the
    bytes leave)."""

    def __init__(self, monkeypatch):
        self.lock = threading.Lock()
        self.until = 0.0
        self.holds = 0
        self.early: list[tuple[str, float]] = []
        original = requests.Session.request

        def request(session, method, url, **kwargs):
            start = time.monotonic()
            with self.lock:
                if start < self.until:
                    self.early.append((url, self.until - start))
            response = original(session, method, url, **kwargs)
            delay = parse_retry_after(response.headers.get("Retry-After"))
            if response.status_code == 429 and delay and not url.endswith("/oauth/token"):
                with self.lock:
                    self.holds += 1
                    self.until = max(self.until, time.monotonic() + delay - 0.005)
            return response

        monkeypatch.setattr(requests.Session, "request", request)


def test_exports_and_imports_wait_for_a_hold_of_the_account(emu, connect):
    client = connect(emu).client
    client.authenticate()
    emu.set_faults(fail_next=[429], retry_after=0.5)
    assert client.request("GET", "/audience/sections", ok=(429,)).status_code == 429
    assert client.holds_remaining() > 0.3
    report_id, wait = client.create_email_report("2026-01-01T00:00:00Z")
    assert report_id and wait is None
    assert emu.stats()["retry_after_violations"] == 0


def test_the_export_limit_holds_only_exports(make_emulator, connect):
    emu = make_emulator()
    emu.export_interval = 60.0
    client = connect(emu).client
    assert client.create_email_report("2026-01-01T00:00:00Z")[0]
    report_id, wait = client.create_email_report("2026-01-01T00:00:00Z")
    assert report_id is None and wait > 50  # 429 of the export limit
    assert client.holds_remaining("export") > 50 and client.holds_remaining() == 0
    assert client.sections()  # profile requests go on
    assert emu.stats()["retry_after_violations"] == 0


def test_key_429_scope_is_a_setting(emu):
    import requests

    r = requests.post(f"{emu.url}/_emulator/settings", json={"key_429_scope": "key"}, timeout=5)
    assert r.status_code == 200 and r.json()["key_429_scope"] == "key"
    r = requests.post(f"{emu.url}/_emulator/settings", json={"key_429_scope": "x"}, timeout=5)
    assert r.status_code == 400
