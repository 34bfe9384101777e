"""Retries of real-time events as pure decisions: when an event gives up, and how long it
waits before the next attempt."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from syncd.engine.rules import RETRY_MAX_DELAY, gives_up, retry_delay


def test_a_failure_retrying_cannot_fix_gives_up_at_once():
    assert gives_up(0, 8, retryable=False)


def test_a_retryable_failure_gives_up_on_its_last_allowed_attempt():
    assert not gives_up(6, 8, retryable=True)
    assert gives_up(7, 8, retryable=True)
    assert gives_up(0, 1, retryable=True)


def test_the_wait_doubles_from_one_second_and_is_capped():
    assert [retry_delay(n) for n in range(5)] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert retry_delay(9) == RETRY_MAX_DELAY == 300.0
    assert retry_delay(10_000) == RETRY_MAX_DELAY


@given(st.integers(min_value=0, max_value=10_000))
def test_the_wait_never_shrinks_and_never_passes_the_cap(attempts):
    assert 1.0 <= retry_delay(attempts) <= retry_delay(attempts + 1) <= RETRY_MAX_DELAY
