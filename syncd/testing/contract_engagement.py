"""Contract tests of response data and tasks (``read_responses``, ``write_responses``,
``create_tasks``; :mod:`syncd.engagement`)."""

from __future__ import annotations

import time

from syncd.engagement import EngagementBatch, TaskRequest
from syncd.testing.harness import Harness


def read_until_ready(harness: Harness, cursor: str | None, timeout: float = 20.0
                     ) -> EngagementBatch:
    """Call ``read_engagement`` again after each ``retry_in`` until a batch is ready."""
    deadline = time.monotonic() + timeout
    while True:
        batch = harness.connector.read_engagement(cursor)
        if batch.ready:
            return batch
        assert batch.retry_in >= 0 and batch.cursor is None, "a batch not ready moves on"
        assert time.monotonic() < deadline, "the events never became ready"
        time.sleep(min(batch.retry_in, 0.2))  # the partner's pace, not an assertion's


class EngagementReaderContract:
    """READ_RESPONSES: an event comes back keyed by its record, with a stable dedupe key;
    a step never waits (not ready: ``retry_in``)."""

    def test_an_event_comes_back_with_a_stable_dedupe_key(self, harness: Harness):
        key = harness.engagement_event()
        batch = read_until_ready(harness, None)
        mine = [e for e in batch.events if e.key == key]
        assert mine and batch.cursor is not None
        assert len({e.dedupe for e in batch.events}) == len(batch.events)
        again = read_until_ready(harness, batch.cursor)
        assert again.cursor is not None
        # windows may overlap: a repeated event must carry the same dedupe key (the core
        # drops it), never a new one
        ours = {e.correlation_id: e.dedupe for e in mine}
        assert all(e.dedupe == ours[e.correlation_id] for e in again.events
                   if e.correlation_id in ours)


class EngagementWriterContract:
    """WRITE_RESPONSES: one result per event keyed by its dedupe; an uncertain write is
    found, not repeated; a missing record is skipped."""

    def test_an_event_is_written_once(self, harness: Harness):
        event = harness.engagement_for(harness.labelled()[0])
        connector = harness.connector
        [first] = connector.write_engagement([event], frozenset())
        assert (first.key, first.outcome) == (event.dedupe, "created")
        [again] = connector.write_engagement(
            [event], frozenset({event.dedupe}))
        assert again.outcome == "unchanged"

    def test_an_event_of_a_missing_record_is_skipped(self, harness: Harness):
        event = harness.engagement_for(harness.missing_id())
        [result] = harness.connector.write_engagement(
            [event], frozenset())
        assert result.outcome == "skipped"


class TaskCreatorContract:
    """CREATE_TASKS: a task is created once per idempotency key; an unknown record says so."""

    def test_a_task_is_created_once_per_key(self, harness: Harness):
        record_id = harness.labelled()[0]
        task = TaskRequest(f"contract-{record_id}", record_id, "Call back",
                           assignee=harness.employee())
        first = harness.connector.create_task(task)
        assert first.outcome == "created" and first.task_id
        again = harness.connector.create_task(task)
        assert (again.outcome, again.task_id) == ("exists", first.task_id)

    def test_an_unknown_record_is_named(self, harness: Harness):
        task = TaskRequest("contract-missing", harness.missing_id(), "Call back",
                           assignee=harness.employee())
        result = harness.connector.create_task(task)
        assert result.outcome == "unknown_record" and result.reason
