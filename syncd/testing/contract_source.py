"""Contract tests every connector, and every source capability, must pass.

Subclass them in a connector's test module (``class TestMyCrmRecords(RecordReaderContract)``)
and give a ``harness`` fixture (:class:`syncd.testing.harness.Harness`).
"""

from __future__ import annotations

import pytest

from syncd.exceptions import SyncdError, WebhookRejected
from syncd.records import Event
from syncd.testing.harness import Harness


def _no_secret(harness: Harness, *texts: object) -> None:
    for text in texts:
        for secret in harness.secrets:
            assert secret not in str(text), "a secret is in the connector's output"


class ConnectorContract:
    """Every connector: a cheap check, secrets never in output, Retry-After honoured."""

    def test_check_answers_with_facts(self, harness: Harness):
        assert isinstance(harness.connector.check(), dict)
        assert isinstance(harness.connector.stats(), dict)

    def test_secrets_are_never_in_output(self, harness: Harness):
        connector = harness.connector
        _no_secret(harness, repr(connector), repr(dict(connector.config)),
                   connector.check(), connector.stats())

    def test_errors_never_show_a_secret(self, harness: Harness):
        if harness.emulator is None:
            pytest.skip("no emulator: the connector sends no requests")
        harness.exercise()  # tokens fetched before the faults
        harness.emulator.set_faults(error_rate=1.0)
        try:
            with pytest.raises(SyncdError) as info:
                harness.exercise()
        finally:
            harness.emulator.set_faults(error_rate=0.0)
        _no_secret(harness, info.value, repr(info.value), harness.connector.stats())

    def test_retry_after_is_honoured(self, harness: Harness):
        if harness.emulator is None:
            pytest.skip("no emulator: the connector sends no requests")
        emulator = harness.emulator
        harness.exercise()  # tokens fetched before the faults
        emulator.reset_stats()
        emulator.set_faults(fail_next=[429], retry_after=0.2)
        harness.exercise()
        stats = emulator.stats()
        assert stats["by_status"].get("429") == 1, "the 429 was not sent"
        assert stats["retry_after_violations"] == 0


class RecordReaderContract:
    """READ_RECORDS: paging to the end, read-back of what webhooks name, deleted records."""

    def read_all(self, harness: Harness, since: str | None = None) -> list[str]:
        ids: list[str] = []
        cursor = None
        for _ in range(10_000):
            page = harness.connector.read_page(cursor, harness.page_size, since=since)
            assert len(page.records) <= harness.page_size, "a page beyond its size"
            ids += [r.id for r in page.records]
            cursor = page.cursor
            if cursor is None:
                return ids
        raise AssertionError("paging never ended")

    def test_paging_reaches_the_end_listing_each_record_once(self, harness: Harness):
        ids = self.read_all(harness)
        assert len(ids) == len(set(ids)), "a record was listed twice"
        assert sorted(ids) == sorted(harness.source_ids())

    def test_a_page_total_counts_every_record(self, harness: Harness):
        page = harness.connector.read_page(None, harness.page_size)
        if page.total is not None:
            assert page.total == len(harness.source_ids())

    def test_read_back_returns_the_records_webhooks_name(self, harness: Harness):
        wanted = sorted(harness.source_ids())[:3]
        records = harness.connector.read_records([Event(i) for i in wanted])
        assert [r.id for r in records] == wanted
        assert not any(r.deleted or r.error for r in records)

    def test_a_deleted_record_reads_back_deleted(self, harness: Harness):
        gone = sorted(harness.source_ids())[-1]
        harness.delete_record(gone)
        records = harness.connector.read_records([Event(gone, kind="deleted")])
        assert [(r.id, r.deleted) for r in records] == [(gone, True)]
        assert gone not in self.read_all(harness)


class WebhookSourceContract:
    """PARSE_WEBHOOKS: a genuine delivery names its records; anything else is rejected
    without showing a secret."""

    def parser(self, harness: Harness):
        connector = harness.connector
        return type(connector).webhook_parser(connector.name, connector.config)

    def test_a_genuine_delivery_names_its_records(self, harness: Harness):
        wanted = sorted(harness.source_ids())[1]
        headers, body = harness.webhook(wanted)
        events = self.parser(harness)(headers, body)
        assert wanted in {e.record_id for e in events}

    def test_a_tampered_body_is_rejected(self, harness: Harness):
        headers, body = harness.webhook(sorted(harness.source_ids())[0])
        with pytest.raises(WebhookRejected) as info:
            self.parser(harness)(headers, body + b" ")
        assert info.value.status in (400, 401, 403)
        _no_secret(harness, info.value, repr(info.value))

    def test_an_unsigned_delivery_is_rejected(self, harness: Harness):
        _, body = harness.webhook(sorted(harness.source_ids())[0])
        with pytest.raises(WebhookRejected) as info:
            self.parser(harness)({}, body)
        _no_secret(harness, info.value)


class DirectReaderContract:
    """READ_RECORD: a direct read finds a record; only a missing one is None."""

    def test_a_direct_read_finds_the_record(self, harness: Harness):
        wanted = sorted(harness.source_ids())[0]
        record = harness.connector.read_record(wanted)
        assert record is not None and record.id == wanted and not record.error

    def test_a_missing_record_is_none(self, harness: Harness):
        assert harness.connector.read_record(harness.missing_id()) is None


class ConsentWriterContract:
    """WRITE_CONSENTS: labels go and come back, idempotently; a missing record fails."""

    def test_a_label_is_removed_and_set_again(self, harness: Harness):
        record_id, label = harness.labelled()
        result = harness.connector.write_consents(record_id, {label: False})
        assert (result.key, result.outcome) == (record_id, "updated")
        assert label not in harness.labels(record_id)
        again = harness.connector.write_consents(record_id, {label: False})
        assert again.outcome in ("unchanged", "updated")
        assert harness.connector.write_consents(record_id, {label: True}).outcome == "updated"
        assert label in harness.labels(record_id)

    def test_a_missing_record_fails_for_good(self, harness: Harness):
        _, label = harness.labelled()
        result = harness.connector.write_consents(harness.missing_id(), {label: False})
        assert result.outcome == "failed" and not result.retryable


class GroupReaderContract:
    """READ_GROUPS: every member of a group, across pages."""

    def test_a_group_lists_every_member(self, harness: Harness):
        name, members = harness.group()
        assert sorted(harness.connector.read_group(name)) == sorted(members)
