"""Bulk writes through Import v2 (BULK_WRITE) against the emulator: the same result as the
single-profile path, per-row failures, the import limits (3 pending, 10 a minute) and failed
imports."""

import time
from collections import Counter, deque

import pytest
import requests
from apsis_support import token
from syncd_apsis.connector import ApsisConnector

from syncd.connectors.connector import Capability, missing_methods
from syncd.records import Consent, Profile
from syncd.testing import wait_for

NEWSLETTER = "com.apsis1.topics.newsletter"
OFFERS = "com.apsis1.topics.offers"
EMAIL_CH = "com.apsis1.channels.email"
SMS_CH = "com.apsis1.channels.sms"
FAST = {"requests_per_second": 20000.0, "per_profile_per_second": 1000.0, "concurrency": 16,
        "import_poll_interval": 0.05}


def unlimited(emu):
    emu.settings(requests_per_second=0, per_key_per_second=0)
    return emu


def people(n, round_=0, start=0):
    """Profiles as the rules make them: every profile carries the same attribute names;
    tags and consents only where there is something to send."""
    out = []
    for i in range(start, start + n):
        attrs = {"firstname": f"First {i} r{round_}", "lastname": f"Last, \"{i}\"\nx",
                 "company": None if (i + round_) % 5 == 0 else f"Acme {i % 7}",
                 "city": "" if (i + round_) % 7 == 0 else f"Stad {round_}"}
        tags = {}
        if i % 3 == 0:
            tags["com.apsis1.tags.vip"] = (i + round_) % 2 == 0
        if i % 4 == 0:
            tags["com.apsis1.tags.lead"] = True
        consents = []
        if i % 2 == 0:
            consents.append(Consent(NEWSLETTER, "email", opted_in=(i + round_) % 3 != 0))
        if i % 5 == 0:
            consents.append(Consent(OFFERS, "sms", opted_in=round_ == 0))
        email = None if i % 11 == 0 else f"p{i}.r{round_ % 2}@example.nl"
        out.append(Profile(key=f"crm-{i}", email=email, attributes=attrs,
                           consents=tuple(consents), tags=tags))
    return out


def state(emu, keys):
    return {k: (emu.profile(k), emu.tags(k), emu.consents(k)) for k in keys}


def raw_import(emu, auth, rows=("crm-x",)):
    """Create an import as another client would, and upload a small file."""
    r = requests.post(f"{emu.url}/v2/audience/sections/{emu.section}/imports", json={
        "keyspace_mappings": [{"keyspace_discriminator": "com.apsis1.keyspaces.crm-id",
                               "field_selector": "id"}]},
                      headers={"Authorization": f"Bearer {auth}"}, timeout=5)
    if r.status_code != 201:
        return r
    data = "id\n" + "".join(f"{k}\n" for k in rows)
    up = requests.put(r.json()["file_upload_url"], data=data.encode(), timeout=5)
    assert up.status_code == 200, up.text
    return r


# -- capability --------------------------------------------------------------------------------


def test_declares_bulk_write():
    assert Capability.BULK_WRITE in ApsisConnector.capabilities
    assert missing_methods(ApsisConnector) == []


# -- the same result as the single path ------------------------------------------------------------


def test_bulk_creates_and_updates_exactly_like_the_single_path(make_emulator, connect):
    single_emu, bulk_emu = unlimited(make_emulator()), unlimited(make_emulator())
    single, bulk = connect(single_emu, **FAST), connect(bulk_emu, **FAST)
    first = people(2500)
    keys = [p.key for p in first]

    r1 = single.write_profiles(first, set())
    b1 = bulk.bulk_write(first)
    assert [r.key for r in b1] == keys
    assert {r.outcome for r in b1} == {"created"} == {r.outcome for r in r1}
    assert bulk_emu.stats()["imports_created"] == 1
    assert bulk_emu.snapshot() == single_emu.snapshot()
    assert state(bulk_emu, keys) == state(single_emu, keys)

    # round two: changed values, cleared ones, flipped tags and consents, 500 new profiles
    second = people(3000, round_=1)
    r2 = single.write_profiles(second, set(keys))
    b2 = bulk.bulk_write(second)
    assert [r.outcome for r in r2] == ["updated"] * 2500 + ["created"] * 500
    # the import result gives counts: exact in total, not which row was which
    assert Counter(r.outcome for r in b2) == Counter(r.outcome for r in r2)
    assert [r.key for r in b2] == [p.key for p in second]
    all_keys = [p.key for p in second]
    assert bulk_emu.snapshot() == single_emu.snapshot()
    assert state(bulk_emu, all_keys) == state(single_emu, all_keys)
    # spot checks that the comparison compares something
    assert bulk_emu.profile("crm-5")["com.apsis1.attributes.company"] == "Acme 5"
    assert "com.apsis1.attributes.company" not in bulk_emu.profile("crm-4")  # None cleared
    assert "com.apsis1.attributes.city" not in bulk_emu.profile("crm-6")  # "" cleared
    assert bulk_emu.consents("crm-0")[(OFFERS, SMS_CH)] == "opt-out"
    assert bulk_emu.tags("crm-6") == {"com.apsis1.tags.vip": False}  # was True
    assert bulk_emu.stats()["retry_after_violations"] == 0


def test_what_a_profile_does_not_carry_is_left_alone(emu, connect):
    conn = connect(unlimited(emu), **FAST)
    conn.bulk_write([Profile("k1", "a@x.nl", {"firstname": "A", "city": "Delft"},
                             consents=(Consent(NEWSLETTER, "email", True),),
                             tags={"com.apsis1.tags.vip": True})])
    # different attribute sets go to separate imports: one's missing column clears nothing
    results = conn.bulk_write([Profile("k1", "a@x.nl", {"firstname": "B"}),
                               Profile("k2", "b@x.nl", {"city": None})])
    assert [r.outcome for r in results] == ["updated", "created"]
    assert emu.profile("k1")["com.apsis1.attributes.city"] == "Delft"
    assert emu.profile("k1")["com.apsis1.attributes.firstname"] == "B"
    assert emu.consents("k1") == {(NEWSLETTER, EMAIL_CH): "opt-in"}
    assert emu.tags("k1") == {"com.apsis1.tags.vip": True}
    assert emu.stats()["imports_created"] == 3


def test_big_batches_are_split_by_file_size(emu, connect, monkeypatch):
    conn = connect(unlimited(emu), **FAST)
    monkeypatch.setattr(ApsisConnector, "MAX_IMPORT_BYTES", 4000)
    emu.configure_imports(import_requests_per_minute=0, import_delay=0.01)
    results = conn.bulk_write(people(200))
    assert {r.outcome for r in results} == {"created"}
    assert emu.stats()["imports_created"] >= 8
    assert len(emu.snapshot()) == 200


# -- per-row failures ----------------------------------------------------------------------------


def test_a_rejected_row_fails_its_own_profile(emu, connect):
    emu.define_attribute("score", type="integer")
    conn = connect(unlimited(emu), **FAST)
    conn.write_profiles([Profile("taken", "dup@x.nl")], set())
    batch = [Profile(f"k{i}", f"k{i}@x.nl", {"score": str(i)}) for i in range(10)]
    batch[3] = Profile("k3", "k3@x.nl", {"score": "many"})
    batch[7] = Profile("k7", "dup@x.nl", {"score": "7"})  # the address is another CRM id's
    results = conn.bulk_write(batch)
    assert [r.key for r in results] == [p.key for p in batch]
    failed = {i: r for i, r in enumerate(results) if r.outcome == "failed"}
    assert sorted(failed) == [3, 7]
    assert "score" in failed[3].reason and "'many'" in failed[3].reason
    assert "belongs to another profile" in failed[7].reason
    assert not failed[3].retryable and not failed[7].retryable
    assert emu.profile("k4")["com.apsis1.attributes.score"] == 4
    assert emu.profile("k3") is None and emu.profile("k7") is None
    assert emu.profile("taken")["com.apsis1.attributes.email"] == "dup@x.nl"


def test_unknown_attributes_fail_before_the_import_like_the_single_path(make_emulator, connect):
    a, b = unlimited(make_emulator()), unlimited(make_emulator())
    bad = Profile("k2", "k2@x.nl", {"shoesize": "44"})
    [single] = connect(a, **FAST).write_profiles([bad], set())
    results = connect(b, **FAST).bulk_write([Profile("k1", "k1@x.nl"), bad,
                                             Profile("k3", "k3@x.nl")])
    assert [r.outcome for r in results] == ["created", "failed", "created"]
    assert results[1].reason == single.reason and "shoesize" in single.reason
    assert results[1].retryable is False
    assert b.stats()["imports_created"] == 1


def test_email_keyspace_needs_an_address(emu, connect):
    conn = connect(unlimited(emu), keyspace="com.apsis1.keyspaces.email", **FAST)
    results = conn.bulk_write([Profile("k1", None), Profile("k2", "k2@x.nl")])
    assert results[0].outcome == "failed" and "needs an e-mail" in results[0].reason
    assert results[1].outcome == "created" and results[1].remote_id == "k2@x.nl"
    assert emu.profile("k2@x.nl", keyspace="com.apsis1.keyspaces.email")[
        "com.apsis1.attributes.crmid"] == "k2"


def test_duplicate_keys_last_wins_and_counts_add_up(emu, connect):
    conn = connect(unlimited(emu), **FAST)
    results = conn.bulk_write([Profile("k1", "a@x.nl", {"firstname": "A"}),
                               Profile("k1", "a@x.nl", {"firstname": "B"})])
    assert [r.outcome for r in results] == ["created", "updated"]
    assert emu.profile("k1")["com.apsis1.attributes.firstname"] == "B"


# -- limits ------------------------------------------------------------------------------------


def test_three_pending_imports_answer_429_with_retry_after_and_it_is_honoured(emu, connect):
    unlimited(emu).configure_imports(import_delay=1.0)
    other = token(emu)
    first = []
    for _ in range(3):
        created = raw_import(emu, other)
        assert created.status_code == 201
        first.append(created.json()["import_id"])
    r = requests.post(f"{emu.url}/v2/audience/sections/{emu.section}/imports", json={
        "keyspace_mappings": [{"keyspace_discriminator": "com.apsis1.keyspaces.crm-id",
                               "field_selector": "id"}]},
                      headers={"Authorization": f"Bearer {other}"}, timeout=5)
    assert r.status_code == 429 and 0 < float(r.headers["Retry-After"]) <= 1.0
    assert r.json()["status"] == 429 and "pending" in r.json()["detail"]
    time.sleep(float(r.headers["Retry-After"]))  # honoured, as a client would
    # The three finish at the time the Retry-After named; wait for that, not for the clock.
    assert wait_for(lambda: emu.process_imports() or all(
        emu.imports[i]["status"] == "completed" for i in first))
    conn = connect(emu, **FAST)
    started = time.monotonic()
    for _ in range(3):
        assert raw_import(emu, other).status_code == 201
    results = conn.bulk_write(people(50))
    assert {r.outcome for r in results} == {"created"}
    assert time.monotonic() - started >= 0.9  # waited for a pending import to finish
    stats = emu.stats()
    assert stats["imports_throttled"] >= 2
    assert stats["retry_after_violations"] == 0 and stats["import_violations"] == 0


def test_ten_imports_a_minute_answer_429_with_retry_after_and_it_is_honoured(emu, connect):
    unlimited(emu)
    assert emu.import_requests_per_minute == 10  # the documented limit is the default
    emu.configure_imports(import_delay=0.0)
    other = token(emu)
    for i in range(10):
        assert raw_import(emu, other, rows=(f"r{i}",)).status_code == 201
        emu.process_imports()
    time.sleep(0.25)
    r = raw_import(emu, other)
    assert r.status_code == 429 and "a minute" in r.json()["detail"]
    assert 55 < float(r.headers["Retry-After"]) <= 60
    # make the minute nearly over, then the connector must wait out the rest, and only that
    with emu.lock:
        emu._import_times = deque(t - 58.5 for t in emu._import_times)
    conn = connect(emu, **FAST)
    started = time.monotonic()
    results = conn.bulk_write(people(20))
    assert {r.outcome for r in results} == {"created"}
    assert time.monotonic() - started >= 1.0
    stats = emu.stats()
    assert stats["retry_after_violations"] == 0 and stats["import_violations"] == 0
    assert stats["imports_throttled"] == 2


def test_import_limits_are_settings(emu):
    r = requests.post(f"{emu.url}/_emulator/settings", json={
        "import_requests_per_minute": 2, "max_pending_imports": 5, "import_delay": 0.01},
                      timeout=5)
    assert r.status_code == 200, r.text
    assert r.json()["import_requests_per_minute"] == 2 and r.json()["max_pending_imports"] == 5
    other = token(emu)
    assert raw_import(emu, other).status_code == 201
    assert raw_import(emu, other).status_code == 201
    assert raw_import(emu, other).status_code == 429
    r = requests.post(f"{emu.url}/_emulator/settings", json={"import_limit": 1}, timeout=5)
    assert r.status_code == 400


def test_a_429_without_retry_after_is_backed_off(emu, connect):
    emu.settings(send_retry_after=False, requests_per_second=0, per_key_per_second=0)
    emu.configure_imports(max_pending_imports=1, import_delay=0.5)
    assert raw_import(emu, token(emu)).status_code == 201
    results = connect(emu, **FAST).bulk_write(people(5))
    assert {r.outcome for r in results} == {"created"}
    assert emu.stats()["imports_throttled"] >= 1


# -- failed and slow imports --------------------------------------------------------------------


def test_a_failed_import_fails_every_profile_as_retryable(emu, connect):
    conn = connect(unlimited(emu), **FAST)
    emu.fail_next_imports.append("internal processing error")
    results = conn.bulk_write(people(30))
    assert {r.outcome for r in results} == {"failed"}
    assert all(r.retryable and "internal processing error" in r.reason for r in results)
    assert emu.snapshot() == {}
    assert {r.outcome for r in conn.bulk_write(people(30))} == {"created"}  # the retry


def test_an_import_that_does_not_finish_in_time_fails_as_retryable(emu, connect):
    unlimited(emu).configure_imports(import_delay=30)
    conn = connect(emu, import_timeout=1.0, **FAST)
    started = time.monotonic()
    results = conn.bulk_write(people(3))
    assert time.monotonic() - started < 3
    assert all(r.outcome == "failed" and r.retryable and "import_timeout" in r.reason
               for r in results)


def test_a_refused_import_fails_without_retry(emu, connect):
    conn = connect(unlimited(emu), email_channel="com.apsis1.channels.nope", **FAST)
    results = conn.bulk_write([Profile("k1", "a@x.nl",
                                       consents=(Consent(NEWSLETTER, "email", True),))])
    assert results[0].outcome == "failed" and not results[0].retryable
    assert "400" in results[0].reason and "channel" in results[0].reason


# -- the emulator's import API -------------------------------------------------------------------


def test_emulator_upload_url_is_pre_signed_and_bounded(emu):
    auth = token(emu)
    emu.configure_imports(max_import_file=1000, import_delay=0.01)
    base = f"{emu.url}/v2/audience/sections/{emu.section}/imports"
    body = {"keyspace_mappings": [{"keyspace_discriminator": "com.apsis1.keyspaces.crm-id",
                                   "field_selector": "id"}],
            "attribute_mappings": [{"attribute_discriminator": "com.apsis1.attributes.nope",
                                    "field_selector": "x"}]}
    h = {"Authorization": f"Bearer {auth}"}
    assert requests.post(base, json=body, headers=h, timeout=5).status_code == 400
    assert requests.post(base, json={}, timeout=5).status_code == 401
    del body["attribute_mappings"]
    created = requests.post(base, json=body, headers=h, timeout=5).json()
    url = created["file_upload_url"]
    assert len(url.rsplit("/", 1)[1]) >= 40 and created["file_upload_url_expires_at"]
    status_url = f"{emu.url}/audience/sections/{emu.section}/imports/{created['import_id']}"
    assert requests.get(status_url, headers=h, timeout=5).json()["status"] == "waiting_for_file"
    assert requests.put(url[:-4] + "abcd", data=b"id\nk\n", timeout=5).status_code == 403
    assert requests.put(url, data=b"id\n" + b"k\n" * 600, timeout=5).status_code == 413
    assert requests.put(url, data=b"id\nk1\n\n", timeout=5).status_code == 200
    assert requests.put(url, data=b"id\nk1\n", timeout=5).status_code == 409
    def look():
        return requests.get(status_url, headers=h, timeout=5).json()

    assert wait_for(lambda: look()["status"] == "completed"), look()
    answer = look()
    assert answer["result"]["created"] == 1 and answer["result"]["failed"] == 1
    assert answer["result"]["errors"][0]["row"] == 2
    assert emu.profile("k1") == {"com.apsis1.attributes.crmid": "k1"}


def test_emulator_file_without_the_mapped_column_fails_the_import(emu):
    auth = token(emu)
    emu.configure_imports(import_delay=0.0)
    h = {"Authorization": f"Bearer {auth}"}
    created = requests.post(f"{emu.url}/v2/audience/sections/{emu.section}/imports", json={
        "keyspace_mappings": [{"keyspace_discriminator": "com.apsis1.keyspaces.crm-id",
                               "field_selector": "id"}]}, headers=h, timeout=5).json()
    requests.put(created["file_upload_url"], data=b"other\nk1\n", timeout=5)
    answer = requests.get(f"{emu.url}/audience/sections/{emu.section}/imports/"
                          f"{created['import_id']}", headers=h, timeout=5).json()
    assert answer["status"] == "failed" and "id" in answer["error"]


@pytest.mark.parametrize("cell", ["maybe"])
def test_emulator_rejects_a_bad_tag_value_per_row(emu, cell):
    auth = token(emu)
    emu.configure_imports(import_delay=0.0)
    h = {"Authorization": f"Bearer {auth}"}
    created = requests.post(f"{emu.url}/v2/audience/sections/{emu.section}/imports", json={
        "keyspace_mappings": [{"keyspace_discriminator": "com.apsis1.keyspaces.crm-id",
                               "field_selector": "id"}],
        "tag_mappings": [{"tag_discriminator": "t.vip", "field_selector": "vip"}]},
                            headers=h, timeout=5).json()
    requests.put(created["file_upload_url"], data=f"id,vip\nk1,true\nk2,{cell}\n".encode(),
                 timeout=5)
    answer = requests.get(f"{emu.url}/audience/sections/{emu.section}/imports/"
                          f"{created['import_id']}", headers=h, timeout=5).json()
    assert answer["result"]["errors"] == [
        {"row": 2, "profile_key": "k2", "reason": "tag t.vip: 'maybe' is not true or false"}]
    assert emu.tags("k1") == {"t.vip": True} and emu.profile("k2") is None
