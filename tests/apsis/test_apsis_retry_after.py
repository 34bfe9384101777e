"""Retry-After under faults, with 8 writers: no request leaves before a Retry-After has passed
(the emulator counts each one that does, per scope), whatever the 429 scope of the per-key
limit (GAP switch ``key_429_scope``) and with or without the header (``send_retry_after``)."""

import pytest

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
                                                       send_retry_after):
    # the server allows 4 requests/s per key; syncd is told 40, so per-key 429s happen too
    emu = make_emulator(per_key_per_second=4, key_429_scope=key_429_scope,
                        send_retry_after=send_retry_after)
    conn = connect(emu, concurrency=8, per_profile_per_second=40, max_attempts=12)
    conn.client.authenticate()
    emu.reset_stats()
    emu.set_faults(throttle_rate=0.05, retry_after=0.3, error_rate=0.10)
    results = conn.write_profiles(people(120), set())
    results += conn.write_profiles(people(120), {f"crm-{i}" for i in range(120)})
    emu.set_faults(throttle_rate=0.0, error_rate=0.0)
    stats = emu.stats()
    assert [r for r in results if r.outcome == "failed"] == []
    assert stats["by_status"].get("429", 0) >= 5, stats  # the faults and the key limit hit
    assert stats["retry_after_violations"] == 0, stats


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
