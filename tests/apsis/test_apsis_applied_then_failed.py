"""Writes whose answer is lost after APSIS applied them (the emulator's "applied, then
failed" faults: a 502, a dropped connection, a hang past the client's timeout). Retries
must create no duplicate: a consent POSTed again answers 409 (apis.md 3.5: the same type is
already set), which the connector takes as done; an import file PUT again answers 409 (the
file is there). An import *creation* whose answer is lost cannot be found again (the API
lists no imports: a GAP), so the retry creates a second import: the rows are still imported
once, and the first import, never given a file, only waits until its upload URL expires."""

from __future__ import annotations

import pytest
from test_apsis_bulk import EMAIL_CH, FAST, NEWSLETTER, people, unlimited

from syncd.records import Consent, Profile
from syncd.testing import wait_for


@pytest.mark.parametrize("fault", [502, 0, 504], ids=["502", "dropped", "hang"])
def test_a_lost_consent_answer_makes_no_second_consent(emu, connect, fault):
    conn = connect(unlimited(emu), **FAST, timeout=0.3)
    emu.set_faults(fail_after_next=[fault], fail_after_path="/consents", hang_seconds=0.6)
    [result] = conn.write_profiles([Profile("k1", "a@x.nl", {"firstname": "A"}, consents=(
        Consent(NEWSLETTER, "email", True),))], set())
    assert result.outcome == "created", result
    assert emu.stats()["applied_then_failed"] == 1
    assert emu.consents("k1") == {(NEWSLETTER, EMAIL_CH): "opt-in"}

    def posts():  # a hung answer is logged when the hang ends, after the retry's
        return sorted(s for _, m, p, s in emu.requests if m == "POST" and p.endswith("/consents"))

    assert wait_for(lambda: posts() == sorted([fault, 409])), posts()  # the retry found it done


def test_a_lost_import_creation_imports_the_rows_once(emu, connect):
    conn = connect(unlimited(emu), **FAST)
    batch = people(40)
    emu.set_faults(fail_after_next=[502], fail_after_path="/audience/sections/")
    results = conn.bulk_write(batch)
    assert {r.outcome for r in results} == {"created"}, results[:3]
    assert emu.stats()["applied_then_failed"] == 1
    statuses = sorted(i["status"] for i in emu.imports.values())
    assert statuses == ["completed", "waiting_for_file"], statuses  # the orphan has no file
    assert emu.import_rows == len(batch)  # every row once
    assert sorted(emu.snapshot()) == sorted(p.key for p in batch)


def test_a_lost_upload_answer_uploads_once(emu, connect):
    conn = connect(unlimited(emu), **FAST)
    batch = people(40)
    emu.set_faults(fail_after_next=[0], fail_after_path="/uploads/")
    results = conn.bulk_write(batch)
    assert {r.outcome for r in results} == {"created"}, results[:3]
    assert emu.stats()["applied_then_failed"] == 1
    assert [i["status"] for i in emu.imports.values()] == ["completed"]
    assert emu.import_rows == len(batch)
    puts = [s for _, m, p, s in emu.requests if m == "PUT" and p.startswith("/uploads/")]
    assert puts == [0, 409], puts
