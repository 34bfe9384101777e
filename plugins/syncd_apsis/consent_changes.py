"""Consent changes made in APSIS One (unsubscribes), read from the e-mail event export
(``apis.md`` 3.6), for :meth:`syncd_apsis.connector.ApsisConnector.read_consent_changes`.

One call:

1. ``cursor`` None: nothing is read; the answer is ``([], now)`` ("from now on").
2. Otherwise an export of ``[cursor - overlap, now)`` is requested, decorated with the CRM id
   attribute (``export_crm_id_column``), and polled until completed (back-off from
   ``export_poll_interval`` up to 10 s). APSIS allows 1 export request a minute: a 429's
   ``Retry-After`` (60 s when it sends none) is waited out, and no export is requested again
   before it ran out. All of that within ``consent_export_timeout`` seconds: past it the call
   returns ``([], cursor)`` and the next call with the same cursor resumes the *same* export
   rather than asking for another one. The hold is shared with the response-data reader
   (:mod:`syncd_apsis.responses`, the client's ``export`` scope), and one longer than
   ``MAX_HOLD_WAIT`` defers the read at once instead of blocking the connection.
3. The gzip CSV is parsed as it streams in; rows are deduplicated by ``correlation_id`` (APSIS
   repeats rows on retries); ``UNSUBSCRIBED`` rows become
   ``ConsentChange(key=crm id, topic, channel="email", opted_in=False, at=...)``, ``at`` from
   ``event_time`` or, when that is 0 (unknown), ``server_time``. Oldest first.
4. The next cursor is the export's ``end_at``: the time the export was requested (never
   later), so nothing recorded after the request is skipped.

The overlap re-reads the last ``consent_poll_overlap`` seconds, for events APSIS records
late. Rows a call already returned are not returned again when the caller passes the cursor
that call returned (that is its acknowledgement; the last 16 cursors are remembered, in
memory). A caller that passes an *older* cursor again (e.g. after a crash before it stored the
changes, or after a restart of the daemon) gets them again, with the same ``at``:
deduplicating by ``(key, topic, channel, at)`` is the caller's job.

GAPs (configurable): the name of the decoration column of an attribute (``export_crm_id_column``
is requested as an attribute and read as a column of that name), and the topic of an
``UNSUBSCRIBED`` row (``export_topic_column``). When a row names no topic, the profile's
consents are read and each opt-out of the e-mail channel becomes a change marked ``inferred``
(the core drops the opt-outs syncd itself wrote: they stay unresolved). A row without a CRM
id (a profile syncd did not write) is skipped and counted.
"""

from __future__ import annotations

import csv
import gzip
import io
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from syncd.plugin import ConsentChange, RemoteError, transport_errors
from syncd_apsis.client_jobs import EXPORT_SCOPE

if TYPE_CHECKING:
    from syncd_apsis.client import ApsisClient

log = structlog.get_logger("syncd.apsis.consents")

UNSUBSCRIBED = "UNSUBSCRIBED"
#: Retry-After assumed when a 429 on an export request carries none (the documented limit).
EXPORT_INTERVAL = 60.0
MAX_POLL_INTERVAL = 10.0
#: A Retry-After hold longer than this defers the read instead of waiting in the call (the
#: connection's actor would block profile writes meanwhile).
MAX_HOLD_WAIT = 5.0
#: How many returned cursors remember the rows of their overlap.
SEEN_CURSORS = 16
CRM_ID_KEYSPACE = "com.apsis1.keyspaces.crm-id"


def iso(moment: datetime) -> str:
    """``2025-01-31T12:00:00.123Z``: UTC, milliseconds (the export's precision)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_cursor(cursor: str) -> datetime:
    value = datetime.fromisoformat(cursor.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def ms_to_iso(value: Any) -> str | None:
    """ISO time of a millisecond epoch value from the CSV; None when 0, empty or bad."""
    try:
        ms = int(float(value))
    except (TypeError, ValueError):
        return None
    if ms <= 0:
        return None
    return iso(datetime.fromtimestamp(ms / 1000, UTC))


class _Chunks(io.RawIOBase):
    """A raw stream over an iterator of byte chunks (``Response.iter_content``)."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._left = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._left:
            try:
                self._left = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._left))
        buffer[:n] = self._left[:n]
        self._left = self._left[n:]
        return n


def csv_rows(chunks: Iterator[bytes]) -> Iterator[dict[str, str]]:
    """The rows of an export file as it streams in: gzip (sniffed by its magic bytes; a plain
    CSV is read as is), UTF-8 with or without a BOM."""
    stream = io.BufferedReader(_Chunks(chunks), buffer_size=64 * 1024)
    binary: io.BufferedReader[_Chunks] | gzip.GzipFile = stream
    if stream.peek(2)[:2] == b"\x1f\x8b":
        binary = gzip.GzipFile(fileobj=stream, mode="rb")
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="replace", newline="")
    yield from csv.DictReader(text)


@dataclass
class _Pending:
    cursor: str
    report_id: str
    end: datetime
    requested: float  # time.monotonic()


class ConsentChangeReader:
    """The state between calls (a pending export, the rows of the last overlap) and the
    reading itself. One per connector; calls are serialised by a lock."""

    def __init__(self, client_of, *, channel: str, section: str, overlap: float,
                 timeout: float, poll_interval: float, crm_id_column: str, topic_column: str,
                 sleep=time.sleep, clock=lambda: datetime.now(UTC)):
        self._client_of = client_of  # () -> ApsisClient (the connector starts it lazily)
        self.channel = channel  # the e-mail channel discriminator (for consent lookups)
        self.section = section
        self.overlap = timedelta(seconds=max(0.0, overlap))
        self.timeout = timeout
        self.poll_interval = max(0.01, poll_interval)
        self.crm_id_column = crm_id_column
        #: The attribute requested to decorate the rows (a discriminator), and the columns
        #: its value may come back as (GAP: the configured one, the discriminator, the
        #: attribute's short name: the first that is filled wins).
        self.crm_id_attribute = crm_id_column if "." in crm_id_column else \
            f"com.apsis1.attributes.{crm_id_column}"
        self.crm_id_columns = tuple(dict.fromkeys(
            (crm_id_column, self.crm_id_attribute, self.crm_id_attribute.rsplit(".", 1)[-1])))
        self.topic_column = topic_column
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: _Pending | None = None
        self._not_before = 0.0  # monotonic: no export request before (a 429's Retry-After)
        #: cursor a call returned -> the correlation ids that call saw in the next overlap
        #: (the last few calls: a caller may pass any of them back)
        self._seen: OrderedDict[str, frozenset[str]] = OrderedDict()
        self.counts: dict[str, int] = {}

    def _count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def read(self, cursor: str | None) -> tuple[list[ConsentChange], str]:
        with self._lock:
            if cursor is None:
                return [], iso(self._clock())
            start = parse_cursor(cursor)  # ValueError for a cursor we did not make
            deadline = time.monotonic() + self.timeout
            pending = self._pending if self._pending and self._pending.cursor == cursor \
                else None
            if pending is None:
                pending = self._request(cursor, start, deadline)
                if pending is None:
                    return [], cursor
                self._pending = pending
            url = self._wait_completed(pending, deadline)
            if url is None:
                self._count("exports_unfinished")
                log.info("apsis.consent_export_unfinished", report=pending.report_id,
                         waited=self.timeout)
                return [], cursor
            changes, seen = self._changes(url, pending, cursor)
            self._pending = None
            next_cursor = iso(pending.end)
            self._seen[next_cursor] = frozenset(seen)
            self._seen.move_to_end(next_cursor)
            while len(self._seen) > SEEN_CURSORS:
                self._seen.popitem(last=False)
            return changes, next_cursor

    # -- requesting and polling ----------------------------------------------------------------

    def _request(self, cursor: str, start: datetime, deadline: float) -> _Pending | None:
        client: ApsisClient = self._client_of()
        while True:
            # the export hold is shared with the response-data reader (the client's
            # ``export`` scope); a long one defers rather than blocking the connection
            wait = max(self._not_before - time.monotonic(),
                       client.holds_remaining(EXPORT_SCOPE))
            if wait > 0:
                if time.monotonic() + wait > deadline or wait > MAX_HOLD_WAIT:
                    self._count("exports_deferred")
                    log.info("apsis.consent_export_deferred", retry_in=round(wait, 3))
                    return None
                self._sleep(wait)
            end = self._clock()
            if end <= start - self.overlap:  # a cursor from the future (clock skew)
                return None
            report_id, retry_after = client.create_email_report(
                iso(start - self.overlap), iso(end), attributes=(self.crm_id_attribute,))
            if report_id is not None:
                self._count("exports")
                return _Pending(cursor, report_id, end, time.monotonic())
            self._count("exports_throttled")
            delay = EXPORT_INTERVAL if retry_after is None else retry_after
            self._not_before = time.monotonic() + delay

    def _wait_completed(self, pending: _Pending, deadline: float) -> str | None:
        client: ApsisClient = self._client_of()
        interval = self.poll_interval
        while True:
            status = client.email_report(pending.report_id)
            state = str(status.get("status") or "").lower()
            if state == "completed":
                url = status.get("file_download_url")
                if not url:
                    raise RemoteError(f"export {pending.report_id} completed without a "
                                      "file_download_url", retryable=True)
                return str(url)
            if state in ("failed", "error", "expired", "cancelled", "canceled"):
                self._pending = None  # ask for a new one next time
                raise RemoteError(f"export {pending.report_id} ended with status {state!r}",
                                  retryable=True)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._sleep(min(interval, left))
            interval = min(interval * 2, MAX_POLL_INTERVAL)

    # -- reading the file -------------------------------------------------------------------------

    def _changes(self, url: str, pending: _Pending, cursor: str
                 ) -> tuple[list[ConsentChange], set[str]]:
        """The changes of the file, and the correlation ids of its rows in the next call's
        overlap (recorded at or after ``end - overlap``)."""
        client: ApsisClient = self._client_of()
        skip = self._seen.get(cursor, frozenset())
        tail_from = int((pending.end - self.overlap).timestamp() * 1000)
        seen: set[str] = set()
        in_tail: set[str] = set()
        found: list[tuple[str, str, str | None]] = []  # (at, crm id, topic or None)
        response = client.download(url)
        try:
            rows = 0
            with transport_errors("GET", url):  # a broken stream: type and path only
                for row in csv_rows(response.iter_content(64 * 1024)):
                    rows += 1
                    if (row.get("type") or "").strip().upper() != UNSUBSCRIBED:
                        continue
                    cid = (row.get("correlation_id") or "").strip()
                    if cid:
                        if cid in seen:
                            self._count("duplicate_rows")
                            continue
                        seen.add(cid)
                    try:
                        if int(float(row.get("server_time") or 0)) >= tail_from and cid:
                            in_tail.add(cid)
                    except ValueError:
                        pass
                    if cid and cid in skip:
                        continue
                    at = ms_to_iso(row.get("event_time")) or ms_to_iso(row.get("server_time"))
                    key = next((v.strip() for c in self.crm_id_columns
                                if (v := row.get(c) or "").strip()), "")
                    if not at or not key:
                        self._count("rows_without_time" if not at else "rows_without_crm_id")
                        continue
                    topic = (row.get(self.topic_column) or "").strip() or None
                    found.append((at, key, topic))
            self._count("rows", rows)
        finally:
            response.close()
        changes: list[ConsentChange] = []
        for at, key, topic in found:
            if topic is not None:
                changes.append(ConsentChange(key, topic, "email", False, at))
            else:
                changes.extend(ConsentChange(key, t, "email", False, at, inferred=True)
                               for t in self._opted_out_topics(key))
        changes.sort(key=lambda c: (parse_cursor(c.at), c.key, c.topic))
        self._count("changes", len(changes))
        return changes, in_tail

    def _opted_out_topics(self, key: str) -> list[str]:
        """GAP fallback for a row without a topic: the topics the profile is opted out of on
        the e-mail channel now."""
        client: ApsisClient = self._client_of()
        try:
            items = client.consents(CRM_ID_KEYSPACE, key, self.section,
                                    types=("opt-out",))
        except RemoteError as exc:
            if exc.status == 404:
                return []
            raise
        return sorted({str(c.get("topic_discriminator")) for c in items
                       if c.get("channel_discriminator") == self.channel
                       and c.get("type") == "opt-out" and c.get("topic_discriminator")})
