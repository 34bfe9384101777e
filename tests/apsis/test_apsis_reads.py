"""READ_PROFILES against the APSIS emulator: the documented consents read decides "not in
APSIS" (404); the attribute and tag reads (GAPs) per emulator switch (``profile_reads``,
``tag_reads``) with the connector option that matches, and a mismatch said per key; a value
the answer leaves out is unknown; reads keep the per-key and account budgets and Retry-After,
and write nothing."""

from __future__ import annotations

import pytest
import requests
from apsis_support import requests_to, token
from syncd_apsis.audience import CRM_ID

NEWSLETTER = "com.apsis1.topics.newsletter"
FIRSTNAME = "com.apsis1.attributes.firstname"
V1_PATH = "/audience/keyspaces/{keyspace}/profiles/{key}/sections/{section}/attributes"


def put(emu, key, **attributes):
    with emu.lock:
        emu.audience.write(CRM_ID, key, emu.section, {
            "com.apsis1.attributes.email": f"{key}@example.org", **attributes}, create=True)
    emu.change_profile(key, consents={f"{NEWSLETTER}|email": "opt-in"}, tags={"vip": True})


@pytest.mark.parametrize("profile_reads, path", [("v2", None), ("v1", V1_PATH)])
@pytest.mark.parametrize("tag_reads", ["map", "items"])
def test_each_answer_shape_reads_the_same(make_emulator, connect, profile_reads, path,
                                          tag_reads):
    emu = make_emulator(profile_reads=profile_reads, tag_reads=tag_reads)
    put(emu, "crm-1", **{FIRSTNAME: "Jan"})
    options = {"profile_attributes_path": path} if path else {}
    (state,) = connect(emu, **options).read_profiles(["crm-1"])
    assert (state.found, state.error) == (True, None)
    assert state.attributes == {FIRSTNAME: "Jan"}  # email and crmid apart
    assert state.email == "crm-1@example.org"
    assert state.consents == {f"{NEWSLETTER}|email": True}
    assert state.tags == {"vip": True}


@pytest.mark.parametrize("profile_reads", ["v1", "none"])
def test_an_attribute_path_the_account_does_not_serve_is_an_error_naming_the_option(
        make_emulator, connect, profile_reads):
    emu = make_emulator(profile_reads=profile_reads)
    put(emu, "crm-1", **{FIRSTNAME: "Jan"})
    (state,) = connect(emu).read_profiles(["crm-1"])
    assert state.error and "profile_attributes_path" in state.error
    assert state.attributes == {} and state.consents == {}  # nothing of it is known


def test_without_tag_reads_the_tags_are_unknown(make_emulator, connect):
    emu = make_emulator(tag_reads="none")
    put(emu, "crm-1", **{FIRSTNAME: "Jan"})
    (state,) = connect(emu).read_profiles(["crm-1"])
    assert state.found and state.error is None and state.tags == {}
    (state,) = connect(emu, profile_tags_path="").read_profiles(["crm-1"])
    assert state.tags == {} and not requests_to(emu, "GET", "/tags")[1:]


def test_a_404_is_not_in_apsis_and_asks_nothing_more(emu, connect):
    put(emu, "crm-1", **{FIRSTNAME: "Jan"})
    states = connect(emu).read_profiles(["crm-9", "crm-1"])
    assert [(s.key, s.found, s.error) for s in states] == [("crm-9", False, None),
                                                           ("crm-1", True, None)]
    assert [p for p, _ in requests_to(emu, "GET", "crm-9")] == [
        "/v2/audience/keyspaces/com.apsis1.keyspaces.crm-id/profiles/crm-9/sections/"
        "com.apsis1.sections.default/consents"]


def test_a_cleared_attribute_is_unknown_never_empty(emu, connect):
    put(emu, "crm-1", **{FIRSTNAME: "Jan"})
    emu.change_profile("crm-1", attributes={FIRSTNAME: None})
    (state,) = connect(emu).read_profiles(["crm-1"])
    assert FIRSTNAME not in state.attributes and state.found


def test_a_change_through_the_control_endpoint_is_read(emu, connect):
    put(emu, "crm-1", **{FIRSTNAME: "Jan"})
    answer = requests.patch(f"{emu.url}/_emulator/profile/crm-1", timeout=5, json={
        "attributes": {FIRSTNAME: "Johan"}, "consents": {f"{NEWSLETTER}|email": "opt-out"},
        "tags": {"vip": False}})
    assert answer.status_code == 204
    (state,) = connect(emu).read_profiles(["crm-1"])
    assert state.attributes[FIRSTNAME] == "Johan"
    assert state.consents == {f"{NEWSLETTER}|email": False} and state.tags == {"vip": False}
    assert requests.patch(f"{emu.url}/_emulator/profile/nobody", json={"tags": {}},
                          timeout=5).status_code == 404


def test_the_read_switches_are_settable_at_run_time(emu):
    answer = requests.post(f"{emu.url}/_emulator/settings", timeout=5,
                           json={"profile_reads": "v1", "tag_reads": "items"})
    assert answer.json()["profile_reads"] == "v1" and emu.tag_reads == "items"
    assert requests.post(f"{emu.url}/_emulator/settings", json={"profile_reads": "v3"},
                         timeout=5).status_code == 400
    headers = {"Authorization": f"Bearer {token(emu)}"}
    put(emu, "crm-1", **{FIRSTNAME: "Jan"})
    v2 = requests.get(f"{emu.url}/v2/audience/keyspaces/{CRM_ID}/profiles/crm-1/sections/"
                      f"{emu.section}/attributes", headers=headers, timeout=5)
    assert v2.status_code == 404 and v2.headers["Content-Type"].startswith(
        "application/problem+json")


def test_reads_keep_the_budgets_and_retry_after_and_write_nothing(make_emulator, connect):
    emu = make_emulator(per_key_per_second=3, requests_per_second=40)
    for i in range(12):
        put(emu, f"crm-{i}", **{FIRSTNAME: f"P{i}"})
    conn = connect(emu, concurrency=6, per_profile_per_second=3, requests_per_second=40)
    conn.client.authenticate()
    emu.reset_stats()
    emu.set_faults(fail_next=[429, 429])
    states = conn.read_profiles([f"crm-{i}" for i in range(12)])
    stats = emu.stats()
    assert [s.attributes[FIRSTNAME] for s in states] == [f"P{i}" for i in range(12)]
    assert stats["retry_after_violations"] == 0, stats
    assert stats["by_status"].get("429", 0) == 2, stats  # only the two faults: paced
    assert {m for _, m, path, _ in list(emu.requests)
            if not path.startswith("/_emulator/")} == {"GET"}
