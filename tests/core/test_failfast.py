"""Fail-fast's decision on its own: which first writes stop a run, and what the error says."""

from syncd.engine.failfast import FailFast, failure_of, verdict
from syncd.records import WriteResult


def failed(status, retryable=False, endpoint="PATCH /things/{key}", detail="nope", fix=None):
    return WriteResult("k", "failed", f"HTTP {status}", retryable=retryable, status=status,
                       endpoint=endpoint, detail=detail, fix=fix)


def ok():
    return WriteResult("k", "created")


def test_twenty_alike_non_retryable_failures_stop_the_run():
    probe = FailFast(20)
    assert probe.probe_size() == 20
    assert probe.observe([failed(403, detail="Forbidden - no write access")] * 19) is None
    assert probe.probe_size() == 1
    error = probe.observe([failed(403, detail="Forbidden - no write access")])
    assert error == ("stopped: the first 20 writes all failed with 403 Forbidden at PATCH "
                     "/things/{key}: Forbidden - no write access (fix: check the credentials "
                     "and the API key's permissions: it must be allowed to write what the "
                     "config names (keyspace, section, attributes))")
    assert probe.tripped == error and probe.probe_size() == 0


def test_the_connectors_fix_wins_over_the_generic_one():
    error = FailFast(2).observe([failed(404, fix="check `section`")] * 2)
    assert error.endswith("(fix: check `section`)")


def test_a_success_a_retryable_failure_or_another_status_lets_the_run_go_on():
    for odd in (ok(), failed(503, retryable=True), failed(400), failed(None)):
        probe = FailFast(20)
        assert probe.observe([failed(415)] * 10 + [odd] + [failed(415)] * 30) is None
        assert probe.done and probe.probe_size() == 0
        assert probe.observe([failed(415)] * 40) is None  # the probe is over for this run


def test_off_and_the_pure_verdict():
    assert FailFast(0).probe_size() == 0
    assert FailFast(0).observe([failed(415)] * 50) is None
    assert verdict([None] * 20, 20) is None
    assert verdict([], 20) is None
    alike = [failure_of(failed(415))] * 3
    assert verdict(alike, 3).startswith("stopped: the first 3 writes all failed with 415")
    assert verdict(alike, 4) is None  # not enough writes yet
