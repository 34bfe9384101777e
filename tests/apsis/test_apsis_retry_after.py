"""Retry-After under faults, with 8 writers: no request leaves before a Retry-After has passed
(the emulator counts each one that does, per scope; the test also counts them where they
leave, in the client), whatever the 429 scope of the per-key limit (GAP switch
``key_429_scope``) and with or without the header (``send_retry_after``).

Both counts are exact, with no grace for load: each request names the 429s whose hold its
sender waited out (``X-Syncd-Held-By``), and is early iff it arrives (the emulator, by the
time its 429 left) or leaves (the client, by when that 429 came back) before one of those
Retry-After ends. A 429 it does not name was still in flight to the client when it was sent.
A client that ignores the holds is counted (the last test here)."""

import pytest

from syncd.connectors.budgets import Holds
from syncd.records import Consent, Profile
from syncd.testing.holds import SentLog

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
    conn = connect(emu, concurrency=8, per_profile_per_second=40, max_attempts=12,
                   backoff=0.1)
    conn.client.authenticate()
    sent = SentLog(monkeypatch, emu.url)
    emu.reset_stats()
    emu.set_faults(throttle_rate=0.05, retry_after=0.4, error_rate=0.10)
    results = conn.write_profiles(people(120), set())
    results += conn.write_profiles(people(120), {f"crm-{i}" for i in range(120)})
    emu.set_faults(throttle_rate=0.0, error_rate=0.0)
    stats = emu.stats()
    assert [r for r in results if r.outcome == "failed"] == []
    assert stats["by_status"].get("429", 0) >= 5, stats  # the faults and the key limit hit
    if send_retry_after:
        assert len(sent.holds) >= 3  # 429s with Retry-After came back
        assert any(k != "-" for k in sent.held_by)  # and were waited out, by name
    assert None not in sent.held_by  # every request said what it knew: judged exactly
    assert sent.early == [], sent.early[:5]
    assert stats["retry_after_violations"] == 0, (stats, list(emu.retry_after_log)[:5])


def test_writers_that_ignore_retry_after_are_counted_at_both_ends(make_emulator, connect,
                                                                   monkeypatch):
    """The holds disabled (the check finds nothing to wait for): the requests the writers
    send during a 429's Retry-After are counted by the emulator and by the client."""
    emu = make_emulator()
    conn = connect(emu, concurrency=8, max_attempts=12, backoff=0.1)
    conn.client.authenticate()
    sent = SentLog(monkeypatch, emu.url)
    monkeypatch.setattr(Holds, "_remaining", lambda self, scope: 0.0)
    emu.reset_stats()
    emu.set_faults(fail_next=[429], retry_after=30)
    conn.client.request("GET", "/audience/sections", ok=(429,))
    results = conn.write_profiles(people(20), set())
    assert [r for r in results if r.outcome == "failed"] == []
    stats = emu.stats()
    assert stats["retry_after_violations"] >= 20, stats  # every write, with no grace
    assert len(sent.early) == stats["retry_after_violations"]


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
