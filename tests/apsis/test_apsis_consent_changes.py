"""Unsubscribes in APSIS One read back through the e-mail event export: the emulator's events
and export (apis.md 3.6), and ``ApsisConnector.read_consent_changes``."""

import csv
import gzip
import io
import time
from datetime import UTC, datetime

import pytest
import requests
from apsis_support import requests_to, token
from syncd_apsis.connector import ApsisConnector
from syncd_apsis.consent_changes import csv_rows
from syncd_apsis.emulator_events import BASE_COLUMNS, TOPIC_COLUMN

from syncd.connectors.connector import Capability
from syncd.records import Consent, ConsentChange, Profile

NEWSLETTER = "com.apsis1.topics.newsletter"
OFFERS = "com.apsis1.topics.offers"
CRMID = "com.apsis1.attributes.crmid"
EMAIL_CHANNEL = "com.apsis1.channels.email"


def subscribed(conn, *keys):
    profiles = [Profile(k, f"{k}@example.nl", consents=(Consent(NEWSLETTER, "email", True),
                                                        Consent(OFFERS, "email", True)))
                for k in keys]
    assert {r.outcome for r in conn.write_profiles(profiles, set())} == {"created"}


def fast(emu, connect, **options):
    return connect(emu, export_poll_interval=0.05, **options)


def parse_at(text):
    return datetime.fromisoformat(text)


def settle():
    """Let the clock pass the millisecond of the last event: an export window is half-open,
    ``[start, end)``, so an event recorded in the very millisecond an export ends comes in the
    next window (not lost, just later)."""
    time.sleep(0.003)


def now_ms():
    """Now, cut to milliseconds: the precision of cursors (cut down, never rounded up)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


# -- the emulator ---------------------------------------------------------------------------


def test_export_round_trip_with_duplicates_and_zero_event_time(emu, connect):
    subscribed(fast(emu, connect), "crm-1", "crm-2")
    start = datetime.now(UTC).isoformat()
    sent = emu.record_event("crm-1", "SENT", duplicate=False, zero_time=False)
    unsub = emu.unsubscribe("crm-1", NEWSLETTER, duplicate=True, zero_time=False)
    zero = emu.unsubscribe("crm-2", OFFERS, duplicate=False, zero_time=True)
    assert emu.consents("crm-1")[(NEWSLETTER, EMAIL_CHANNEL)] == "opt-out"
    assert unsub["address"] == "crm-1@example.nl" and unsub[TOPIC_COLUMN] == NEWSLETTER
    assert zero["event_time"] == 0 and zero["server_time"] > 0

    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token(emu)}"
    emu.configure_exports(export_delay=3600)  # pending for sure, however slow the machine
    created = api.post(f"{emu.url}/emails/reports", json={"start_at": start,
                                                           "attributes": [CRMID]})
    assert created.status_code == 201
    report = created.json()
    assert report["status"] == "pending" and report["report_id"]
    status = api.get(f"{emu.url}/emails/reports/{report['report_id']}").json()
    assert status["status"] == "pending"
    assert api.get(f"{emu.url}/emails/reports/{report['report_id']}/file").status_code == 404
    emu.configure_exports(export_delay=0)  # the delay is over
    status = api.get(f"{emu.url}/emails/reports/{report['report_id']}").json()
    assert status["status"] == "completed"
    assert {"file_download_url", "file_download_url_expires_at", "file_expires_at"} <= \
        set(status)
    url = status["file_download_url"]
    assert requests.get(url, timeout=5).status_code == 401  # the same bearer is needed
    download = api.get(url)
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "application/gzip"
    rows = list(csv.DictReader(io.StringIO(gzip.decompress(download.content).decode())))
    assert list(rows[0]) == [*BASE_COLUMNS, TOPIC_COLUMN, CRMID]
    by_type = [(r["type"], r["correlation_id"], r[CRMID]) for r in rows]
    assert by_type == [("SENT", sent["correlation_id"], "crm-1"),
                       ("UNSUBSCRIBED", unsub["correlation_id"], "crm-1"),
                       ("UNSUBSCRIBED", unsub["correlation_id"], "crm-1"),  # a duplicate
                       ("UNSUBSCRIBED", zero["correlation_id"], "crm-2")]
    assert rows[3]["event_time"] == "0" and int(rows[3]["server_time"]) > 0
    assert rows[0][TOPIC_COLUMN] == "" and rows[3][TOPIC_COLUMN] == OFFERS
    assert list(csv_rows(iter([download.content[:10], download.content[10:]]))) == rows

    # a window that ends before the events holds none of them; bad input is a 400 problem
    early = api.post(f"{emu.url}/emails/reports", json={"start_at": "2020-01-01T00:00:00Z",
                                                         "end_at": start}).json()
    url = api.get(f"{emu.url}/emails/reports/{early['report_id']}").json()["file_download_url"]
    assert gzip.decompress(api.get(url).content).decode().count("\n") == 1  # the header
    bad = api.post(f"{emu.url}/emails/reports", json={"start_at": "yesterday"})
    assert bad.status_code == 400 and bad.json()["status"] == 400


def test_quirks_are_deterministic_for_the_seed(make_emulator, connect):
    def quirks(seed):
        emu = make_emulator(seed=seed)
        subscribed(connect(emu), "crm-1")
        rows = [emu.record_event("crm-1", "OPENED") for _ in range(60)]
        zero = [r["event_time"] == 0 for r in rows]
        ids = [r["correlation_id"] for r in emu.email_events]
        return zero, len(ids) - len(set(ids)), ids

    first, second = quirks(7), quirks(7)
    assert first == second
    assert any(first[0]) and first[1] > 0, "both quirks show up at the default rates"
    assert quirks(8)[2] != first[2]


def test_unsubscribe_rejects_what_does_not_exist(emu, connect):
    subscribed(connect(emu), "crm-1")
    with pytest.raises(KeyError):
        emu.unsubscribe("nobody", NEWSLETTER)
    with pytest.raises(ValueError):
        emu.unsubscribe("crm-1", "com.apsis1.topics.nope")
    assert emu.unsubscribe("crm-1", NEWSLETTER, "com.apsis1.channels.sms") is None  # SMS: GAP
    assert emu.consents("crm-1")[(NEWSLETTER, "com.apsis1.channels.sms")] == "opt-out"
    assert emu.email_events == []


# -- the connector ------------------------------------------------------------------------------


def test_capability_and_options_are_declared():
    assert Capability.READ_CONSENT_CHANGES in ApsisConnector.capabilities
    options = {o.name: o for o in ApsisConnector.options}
    for name in ("consent_poll_overlap", "consent_export_timeout", "export_poll_interval",
                 "export_crm_id_column", "export_topic_column"):
        assert options[name].doc and "\n" not in options[name].doc


def test_no_cursor_means_from_now(emu, connect):
    conn = fast(emu, connect)
    before = now_ms()
    changes, cursor = conn.read_consent_changes(None)
    assert changes == [] and before <= parse_at(cursor) <= datetime.now(UTC)
    assert requests_to(emu, "POST", "/emails/reports") == []


def test_unsubscribe_comes_back_exactly_once(emu, connect):
    conn = fast(emu, connect)
    subscribed(conn, "crm-1", "crm-2")
    _, cursor0 = conn.read_consent_changes(None)
    emu.record_event("crm-2", "OPENED")  # other events are not consent changes
    row = emu.unsubscribe("crm-1", NEWSLETTER, duplicate=True, zero_time=False)

    settle()
    asked = now_ms()
    changes, cursor1 = conn.read_consent_changes(cursor0)
    assert changes == [ConsentChange("crm-1", NEWSLETTER, "email", False,
                                     changes[0].at)]
    assert parse_at(changes[0].at).timestamp() * 1000 == pytest.approx(row["event_time"], abs=1)
    assert asked <= parse_at(cursor1) <= datetime.now(UTC)  # the export's end: when asked

    # the next window overlaps the last one (consent_poll_overlap): not returned again
    again, cursor2 = conn.read_consent_changes(cursor1)
    assert again == [] and cursor2 > cursor1
    assert conn.stats()["consent_duplicate_rows"] >= 1

    # a caller that passes the old cursor again gets the same change, same `at`: it dedupes
    replay, _ = conn.read_consent_changes(cursor0)
    assert replay == changes

    # a later unsubscribe comes in the next call, alone
    emu.unsubscribe("crm-2", OFFERS, duplicate=False, zero_time=False)
    settle()
    later, _ = conn.read_consent_changes(cursor2)
    assert [(c.key, c.topic) for c in later] == [("crm-2", OFFERS)]


def test_zero_event_time_uses_server_time_and_changes_come_oldest_first(emu, connect):
    conn = fast(emu, connect)
    subscribed(conn, "crm-1", "crm-2")
    _, cursor = conn.read_consent_changes(None)
    first = emu.unsubscribe("crm-2", OFFERS, zero_time=True, duplicate=False)
    time.sleep(0.01)
    second = emu.unsubscribe("crm-1", NEWSLETTER, zero_time=False, duplicate=True)
    settle()
    changes, _ = conn.read_consent_changes(cursor)
    assert [(c.key, c.topic) for c in changes] == [("crm-2", OFFERS), ("crm-1", NEWSLETTER)]
    assert parse_at(changes[0].at).timestamp() * 1000 == pytest.approx(first["server_time"],
                                                                      abs=1)
    assert parse_at(changes[1].at).timestamp() * 1000 == pytest.approx(second["event_time"],
                                                                      abs=1)


def test_rows_without_a_topic_fall_back_to_the_profiles_opt_outs(emu, connect):
    conn = fast(emu, connect, export_topic_column="not_in_the_file")
    subscribed(conn, "crm-1")
    _, cursor = conn.read_consent_changes(None)
    emu.unsubscribe("crm-1", OFFERS, duplicate=False)
    settle()
    changes, _ = conn.read_consent_changes(cursor)
    assert [(c.key, c.topic, c.channel, c.opted_in) for c in changes] == [
        ("crm-1", OFFERS, "email", False)]


def test_the_one_a_minute_limit_is_honoured_with_retry_after(emu, connect):
    emu.configure_exports(export_interval=1.0)
    conn = fast(emu, connect, consent_export_timeout=10)
    subscribed(conn, "crm-1")
    _, cursor0 = conn.read_consent_changes(None)
    emu.unsubscribe("crm-1", NEWSLETTER, duplicate=False)
    settle()
    changes, cursor1 = conn.read_consent_changes(cursor0)
    assert len(changes) == 1
    emu.unsubscribe("crm-1", OFFERS, duplicate=False)
    settle()
    changes, _ = conn.read_consent_changes(cursor1)  # 429 first, then after its Retry-After
    assert [c.topic for c in changes] == [OFFERS]
    accepted = [t for t, m, path, status in list(emu.requests)
                if m == "POST" and path == "/emails/reports" and status == 201]
    assert len(accepted) == 2 and accepted[1] - accepted[0] >= 0.99
    stats = emu.stats()
    assert stats["exports_throttled"] >= 1 and stats["by_status"].get("429", 0) >= 1
    assert stats["retry_after_violations"] == 0 and stats["export_violations"] == 0
    assert conn.stats()["consent_exports_throttled"] >= 1
    # a Retry-After beyond the call's budget defers the read; the hold is the exports' own:
    # profile writes of the connection go on at once
    emu.configure_exports(export_interval=60.0)
    began = time.monotonic()
    assert conn.read_consent_changes(cursor1) == ([], cursor1)
    subscribed(conn, "crm-9")
    assert time.monotonic() - began < 5
    assert emu.stats()["retry_after_violations"] == 0


def test_a_long_retry_after_defers_without_violations(emu, connect):
    emu.configure_exports(export_interval=60.0)
    conn = fast(emu, connect, consent_export_timeout=1)
    _, cursor0 = conn.read_consent_changes(None)
    _, cursor1 = conn.read_consent_changes(cursor0)  # the minute starts
    began = time.monotonic()
    assert conn.read_consent_changes(cursor1) == ([], cursor1)  # 429: 60 s > 1 s budget
    assert conn.read_consent_changes(cursor1) == ([], cursor1)  # not even asked again
    assert time.monotonic() - began < 5  # not the 60 s
    assert len(requests_to(emu, "POST", "/emails/reports")) == 2
    assert emu.stats()["retry_after_violations"] == 0
    assert conn.stats()["consent_exports_deferred"] >= 1


def test_an_unfinished_export_is_resumed_not_requested_again(emu, connect):
    emu.configure_exports(export_delay=1.5)
    conn = fast(emu, connect, consent_export_timeout=1)
    subscribed(conn, "crm-1")
    _, cursor0 = conn.read_consent_changes(None)
    emu.unsubscribe("crm-1", NEWSLETTER, duplicate=False)
    settle()
    assert conn.read_consent_changes(cursor0) == ([], cursor0)
    changes, cursor1 = conn.read_consent_changes(cursor0)
    assert [(c.key, c.topic) for c in changes] == [("crm-1", NEWSLETTER)]
    assert cursor1 > cursor0
    assert emu.stats()["exports_requested"] == 1


# -- the consent write path ------------------------------------------------------------------


def test_consents_go_to_the_configured_channel_discriminators(emu, connect):
    conn = connect(emu, sms_channel="com.example.channels.text")
    profile = Profile("crm-1", "a@x.nl", consents=(Consent(NEWSLETTER, "email", True),
                                                   Consent(NEWSLETTER, "sms", True)))
    [result] = conn.write_profiles([profile], set())
    assert result.outcome == "failed" and "com.example.channels.text" in result.reason
    assert emu.consents("crm-1") == {(NEWSLETTER, EMAIL_CHANNEL): "opt-in"}


def test_an_unsubscribe_then_the_crms_opt_out_is_unchanged_not_failed(emu, connect):
    conn = fast(emu, connect)
    subscribed(conn, "crm-1")
    emu.unsubscribe("crm-1", NEWSLETTER)
    profile = Profile("crm-1", "crm-1@example.nl",
                      consents=(Consent(NEWSLETTER, "email", False),))
    [result] = conn.write_profiles([profile], {"crm-1"})
    assert result.outcome == "updated" and result.reason is None
    assert requests_to(emu, "POST", "/consents")[-1][1] == 409
