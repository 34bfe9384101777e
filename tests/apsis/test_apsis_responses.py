"""Response data from APSIS One: the emulator's SMS export, signed and expiring download URLs
and header_auth (apis.md 3.6), and ``ApsisConnector.read_engagement`` against each setting:
e-mail and SMS types, duplicate rows, event_time 0, unknown addresses, the 1-a-minute hold,
the SMS export's path and column names (a GAP)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from apsis_support import token

from syncd.records import Profile

CRMID = "com.apsis1.attributes.crmid"


def profiles(conn, *keys):
    results = conn.write_profiles([Profile(k, f"{k}@example.nl") for k in keys], set())
    assert {r.outcome for r in results} == {"created"}


def since() -> str:
    return (datetime.now(UTC) - timedelta(seconds=5)).isoformat(timespec="milliseconds")


def read_all(conn, cursor, tries=200):
    """read_engagement until ready (each step is non-blocking)."""
    for _ in range(tries):
        batch = conn.read_engagement(cursor)
        if batch.ready:
            return batch
        assert batch.retry_in > 0
        time.sleep(min(batch.retry_in, 0.05))
    raise AssertionError("the export never became ready")


# -- the emulator ---------------------------------------------------------------------------


def export(emu, path="/emails/reports", **body):
    headers = {"Authorization": f"Bearer {token(emu)}"}
    r = requests.post(emu.url + path, json={"start_at": since(), "attributes": [CRMID], **body},
                      headers=headers, timeout=5)
    assert r.status_code == 201, r.text
    report_id = r.json()["report_id"]
    deadline = time.monotonic() + 5
    while True:
        status = requests.get(f"{emu.url}{path}/{report_id}", headers=headers, timeout=5)
        if status.json()["status"] == "completed":
            return status, headers
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_download_urls_are_signed_and_expire(emu, connect):
    profiles(connect(emu), "crm-1")
    emu.export_delay = 0.0
    emu.record_event("crm-1", "OPENED")
    status, headers = export(emu)
    url = status.json()["file_download_url"]
    assert "signature=" in url and status.json()["file_download_url_expires_at"]
    assert requests.get(url, headers=headers, timeout=5).status_code == 200
    bad = url.replace("signature=", "signature=0")
    assert requests.get(bad, headers=headers, timeout=5).status_code == 403
    emu.download_url_ttl = -1  # a URL handed out now has already expired
    status, headers = export(emu)
    assert requests.get(status.json()["file_download_url"], headers=headers,
                        timeout=5).status_code == 403


def test_header_auth_moves_the_credential_to_a_header(emu, connect):
    profiles(connect(emu), "crm-1")
    emu.export_delay = 0.0
    emu.record_event("crm-1", "CLICKED")
    status, headers = export(emu, header_auth=True)
    url = status.json()["file_download_url"]
    assert "signature" not in url
    assert status.headers["x-apsis-auth"]
    assert requests.get(url, headers=headers, timeout=5).status_code == 403
    ok = requests.get(url, headers={**headers, "x-apsis-auth": status.headers["x-apsis-auth"]},
                      timeout=5)
    assert ok.status_code == 200


def test_sms_export_at_its_path(make_emulator, connect):
    emu = make_emulator(sms_export_path="/v2/sms/events/exports")
    profiles(connect(emu), "crm-1")
    emu.export_delay = 0.0
    emu.record_sms_event("crm-1", "UNDELIVERED")
    with pytest.raises(ValueError):
        emu.record_sms_event("crm-1", "BOUNCED")
    status, headers = export(emu, path="/v2/sms/events/exports")
    data = requests.get(status.json()["file_download_url"], headers=headers, timeout=5)
    assert data.status_code == 200 and data.headers["Content-Type"] == "application/gzip"


# -- the connector --------------------------------------------------------------------------


@pytest.mark.parametrize("header_auth", [False, True])
def test_every_type_read_once_with_server_time_for_zero(emu, connect, header_auth):
    conn = connect(emu, export_poll_interval=0.02, export_header_auth=header_auth)
    profiles(conn, "crm-1", "crm-2")
    cursor = since()
    for kind in ("SENT", "DELIVERED", "BOUNCED", "OPENED", "CLICKED", "ABUSE"):
        emu.record_event("crm-1", kind, duplicate=kind == "OPENED", zero_time=kind == "SENT")
    emu.unsubscribe("crm-2", "com.apsis1.topics.newsletter", duplicate=False)
    for kind in ("DELIVERED", "UNDELIVERED", "OPENED", "CLICKED"):
        emu.record_sms_event("crm-2", kind, duplicate=kind == "CLICKED")
    emu.record_unknown("nobody@example.org", "OPENED")
    time.sleep(0.003)
    batch = read_all(conn, cursor)
    got = sorted((e.key, e.type) for e in batch.events)
    assert got == sorted([("crm-1", t) for t in ("email_sent", "email_delivered",
                                                  "email_bounced", "email_opened",
                                                  "email_clicked")]
                         + [("crm-2", "email_unsubscribed")]
                         + [("crm-2", f"sms_{t}") for t in ("delivered", "undelivered",
                                                           "opened", "clicked")]
                         + [("", "email_opened")])
    assert batch.counts["duplicate_rows"] == 2 and batch.counts["other_types"] == 1
    sent = next(e for e in batch.events if e.type == "email_sent")
    assert sent.at.endswith("Z")  # event_time 0: the server time
    assert batch.cursor > cursor and batch.lag is not None
    # the same cursor again: the same events, the same dedupe keys
    again = read_all(conn, cursor)
    assert {e.dedupe for e in again.events} == {e.dedupe for e in batch.events}


def test_the_one_a_minute_limit_holds_without_waiting(emu, connect):
    emu.configure_exports(export_interval=60.0)
    conn = connect(emu, export_poll_interval=0.02, sms_export_path="")
    profiles(conn, "crm-1")
    emu.record_event("crm-1", "OPENED")
    first = read_all(conn, since())
    assert first.ready
    began = time.monotonic()
    held = conn.read_engagement(first.cursor)
    assert not held.ready and 50 < held.retry_in <= 60
    assert time.monotonic() - began < 2  # answered at once: the actor is not blocked
    assert conn.read_engagement(first.cursor).ready is False
    assert emu.stats()["export_violations"] == 0


def test_sms_columns_and_type_names_are_configurable(make_emulator, connect):
    emu = make_emulator()
    conn = connect(emu, export_poll_interval=0.02,
                   sms_columns={"address": "sender"},  # any column: the emulator sends both
                   sms_type_names={"UNDELIVERED": "undelivered", "DELIVERED": "delivered"})
    profiles(conn, "crm-1")
    emu.record_sms_event("crm-1", "UNDELIVERED")
    batch = read_all(conn, since())
    [event] = [e for e in batch.events if e.channel == "sms"]
    assert event.type == "sms_undelivered" and event.address == "SANDBOX"


def test_expired_url_is_asked_for_again(emu, connect):
    conn = connect(emu, export_poll_interval=0.02, sms_export_path="")
    profiles(conn, "crm-1")
    emu.record_event("crm-1", "CLICKED")
    emu.download_url_ttl = -1
    with pytest.raises(Exception) as raised:
        read_all(conn, since())
    assert "403" in str(raised.value)
    assert conn._engagement.counts["download_urls_expired"] == 1
    emu.download_url_ttl = 3600
    assert [e.type for e in read_all(conn, since()).events] == ["email_clicked"]


def test_a_backlog_for_benchmarks(emu, connect):
    conn = connect(emu, export_poll_interval=0.02, sms_export_path="")
    profiles(conn, "crm-1", "crm-2")
    r = requests.post(f"{emu.url}/_emulator/events", json={
        "crm_ids": ["crm-1", "crm-2", "nobody"], "count": 500, "types": ["OPENED", "CLICKED"]},
        timeout=10)
    assert r.json() == {"recorded": 500}
    batch = read_all(conn, since())
    assert len(batch.events) == 500 and {e.key for e in batch.events} == {"crm-1", "crm-2"}
    assert len({e.dedupe for e in batch.events}) == 500
    oldest = min(e.at for e in batch.events)
    assert oldest < (datetime.now(UTC) - timedelta(days=6)).isoformat()  # a week spread


def test_the_two_export_readers_share_the_hold_and_neither_blocks(emu, connect):
    """Response data and consent changes both use the e-mail export (1 a minute): after the
    response reader was throttled, the consent reader defers at once (its default budget
    is 120 s) instead of waiting the minute out in the connection's actor."""
    emu.configure_exports(export_interval=60.0)
    conn = connect(emu, export_poll_interval=0.02, sms_export_path="")
    profiles(conn, "crm-1")
    _, cursor = conn.read_consent_changes(None)
    assert read_all(conn, since()).ready  # the minute starts
    held = conn.read_engagement("2026-01-01T00:00:00.000Z")  # another cursor: 429
    assert not held.ready and held.retry_in > 50
    began = time.monotonic()
    time.sleep(0.002)
    assert conn.read_consent_changes(cursor) == ([], cursor)
    assert time.monotonic() - began < 5
    assert emu.stats()["retry_after_violations"] == 0
