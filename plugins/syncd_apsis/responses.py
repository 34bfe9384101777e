"""Engagement events (response data) from APSIS One's event exports, for
:meth:`syncd_apsis.connector.ApsisConnector.read_engagement` (``apis.md`` 3.6).

One call is one step and never waits (the coordinator keeps handling real-time events):

1. For each export (e-mail: ``POST /emails/reports`` [DOC, path INFER]; SMS: the configured
   ``sms_export_path``, a GAP: the public docs show no SMS export) not yet requested for this
   cursor, request ``[cursor - overlap, now)``, decorated with the CRM id attribute. APSIS
   allows 1 event export request a minute: a hold (a 429's ``Retry-After``, 60 s when it
   sends none, shared with the consent reader through the client's ``export`` scope) answers
   ``ready=False`` with ``retry_in``; so does an export still ``pending``.
2. When all are ``completed``: download each ``file_download_url`` (expires: a 403/404 on it
   asks for the status again, which gives a fresh URL). With ``export_header_auth`` the
   export is requested with ``header_auth: true`` and the status answer's ``x-apsis-auth``
   header goes back on the download [DOC].
3. Rows become :class:`~syncd.engagement.EngagementEvent`: e-mail ``type`` SENT, DELIVERED,
   OPENED, CLICKED, BOUNCED, UNSUBSCRIBED (ABUSE is not written); SMS types by
   ``sms_type_names``. The time is ``event_time``, or ``server_time`` when it is 0. The CRM
   id comes from the decoration column (``export_crm_id_column``, its discriminator or short
   name); a row without one is an event of a profile syncd did not write (``key = ""``, the
   core counts it as unmatched). Duplicate rows (same ``correlation_id`` and type) are
   dropped and counted; the core dedupes again across exports by ``(correlation_id, type,
   profile, time)``.
4. The next cursor is the earliest ``end_at`` of the exports (never later than a request).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from syncd.plugin import (
    EngagementBatch,
    EngagementEvent,
    RemoteError,
    parse_retry_after,
    transport_errors,
)
from syncd_apsis.client_jobs import EXPORT_SCOPE, PROBLEM, segment
from syncd_apsis.consent_changes import EXPORT_INTERVAL, csv_rows, iso, ms_to_iso, parse_cursor

if TYPE_CHECKING:
    from syncd_apsis.client import ApsisClient

EMAIL_TYPES = {"SENT": "email_sent", "DELIVERED": "email_delivered",
               "OPENED": "email_opened", "CLICKED": "email_clicked",
               "BOUNCED": "email_bounced", "UNSUBSCRIBED": "email_unsubscribed"}
#: Defaults of the SMS export's columns (GAP: configurable with ``sms_columns``).
SMS_COLUMNS = {"type": "type", "correlation_id": "correlation_id", "address": "address",
               "event_time": "event_time", "server_time": "server_time",
               "campaign": "activity_name"}
SMS_TYPE_NAMES = {"DELIVERED": "delivered", "UNDELIVERED": "undelivered",
                  "OPENED": "opened", "CLICKED": "clicked"}
AUTH_HEADER = "x-apsis-auth"
#: The first read (no cursor) reaches back this far.
FIRST_WINDOW = timedelta(hours=1)


@dataclass
class _Export:
    channel: str
    cursor: str | None
    report_id: str
    end: datetime
    auth: str | None = None


class EngagementReader:
    """One per connector; calls are serialised by a lock."""

    def __init__(self, client_of: Callable[[], ApsisClient], *, crm_id_column: str,
                 overlap: float, poll_interval: float, sms_path: str,
                 sms_columns: Mapping[str, str], sms_types: Mapping[str, str],
                 header_auth: bool, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self._client_of = client_of
        attribute = crm_id_column if "." in crm_id_column else \
            f"com.apsis1.attributes.{crm_id_column}"
        self.attribute = attribute
        self.id_columns = tuple(dict.fromkeys((crm_id_column, attribute,
                                               attribute.rsplit(".", 1)[-1])))
        self.overlap = timedelta(seconds=max(0.0, overlap))
        self.poll_interval = max(0.01, poll_interval)
        self.paths = {"email": "/emails/reports"}
        if sms_path:
            self.paths["sms"] = "/" + sms_path.strip("/")
        self.sms_columns = {**SMS_COLUMNS, **dict(sms_columns)}
        self.sms_types = {str(k).upper(): f"sms_{v}" for k, v in
                          {**SMS_TYPE_NAMES, **dict(sms_types)}.items()}
        self.header_auth = header_auth
        self._clock = clock
        self._lock = threading.Lock()
        self._exports: dict[str, _Export] = {}
        self._not_before = 0.0  # monotonic
        self.counts: dict[str, int] = {}

    def _count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def read(self, cursor: str | None) -> EngagementBatch:
        with self._lock:
            now = self._clock()
            start = parse_cursor(cursor) if cursor else now - FIRST_WINDOW
            lag = max(0.0, (now - start).total_seconds())
            client = self._client_of()
            for channel, path in self.paths.items():
                export = self._exports.get(channel)
                if export is not None and export.cursor == cursor:
                    continue
                hold = max(self._not_before - time.monotonic(),
                           client.holds_remaining(EXPORT_SCOPE))
                if hold > 0:
                    return EngagementBatch(False, retry_in=hold, lag=lag)
                end = self._clock()
                report_id, retry_after = self._request(client, path, start - self.overlap, end)
                if report_id is None:
                    wait = EXPORT_INTERVAL if retry_after is None else retry_after
                    self._not_before = time.monotonic() + wait
                    self._count("exports_throttled")
                    return EngagementBatch(False, retry_in=wait, lag=lag)
                self._count("exports")
                self._exports[channel] = _Export(channel, cursor, report_id, end)
            urls: dict[str, str] = {}
            for channel, export in self._exports.items():
                url = self._status(client, export)
                if url is None:
                    return EngagementBatch(False, retry_in=self.poll_interval, lag=lag)
                urls[channel] = url
            events: list[EngagementEvent] = []
            dropped: dict[str, int] = {}
            for channel, url in urls.items():
                events.extend(self._events(client, self._exports[channel], url, dropped))
            end = min(e.end for e in self._exports.values())
            self._exports.clear()
            return EngagementBatch(True, tuple(events), cursor=iso(end), counts=dropped,
                                   lag=lag)

    # -- requests ------------------------------------------------------------------------------

    def _request(self, client: ApsisClient, path: str, start: datetime, end: datetime
                 ) -> tuple[str | None, float | None]:
        body: dict[str, Any] = {"start_at": iso(start), "end_at": iso(end),
                                "attributes": [self.attribute]}
        if self.header_auth:
            body["header_auth"] = True
        response = client.exports_http.request(
            "POST", path, ok=(429,), json=body, scope=EXPORT_SCOPE,
            headers={"Accept": f"{PROBLEM}, application/json"})
        if response.status_code == 429:
            return None, parse_retry_after(response.headers.get("Retry-After"))
        data = response.json()
        report_id = data.get("report_id") or data.get("id")
        if not report_id:
            raise RemoteError(f"POST {path} answered without a report_id",
                              status=response.status_code, retryable=True)
        return str(report_id), None

    def _status(self, client: ApsisClient, export: _Export) -> str | None:
        path = f"{self.paths[export.channel]}/{segment(export.report_id)}"
        response = client.exports_http.request(
            "GET", path, headers={"Accept": f"{PROBLEM}, application/json"})
        status = response.json()
        state = str(status.get("status") or "").lower()
        if state in ("failed", "error", "expired", "cancelled", "canceled"):
            self._exports.pop(export.channel, None)
            raise RemoteError(f"export {export.report_id} ended with status {state!r}",
                              retryable=True)
        if state != "completed":
            return None
        url = status.get("file_download_url")
        if not url:
            raise RemoteError(f"export {export.report_id} completed without a "
                              "file_download_url", retryable=True)
        export.auth = response.headers.get(AUTH_HEADER)
        return str(url)

    # -- the files -----------------------------------------------------------------------------

    def _events(self, client: ApsisClient, export: _Export, url: str,
                dropped: dict[str, int]) -> list[EngagementEvent]:
        headers = {AUTH_HEADER: export.auth} if export.auth else {}
        try:
            response = client.download(url, headers=headers)
        except RemoteError as exc:  # an expired URL: a fresh one from the status, once
            if exc.status not in (403, 404, 410):
                raise
            self._count("download_urls_expired")
            fresh = self._status(client, export)
            if fresh is None:
                raise
            response = client.download(fresh, headers={AUTH_HEADER: export.auth}
                                       if export.auth else {})
        sms = export.channel == "sms"
        col = self.sms_columns if sms else {k: k for k in SMS_COLUMNS} | {
            "campaign": "activity_name"}
        types = self.sms_types if sms else EMAIL_TYPES
        seen: set[tuple[str, str]] = set()
        out: list[EngagementEvent] = []

        def drop(reason: str) -> None:
            dropped[reason] = dropped.get(reason, 0) + 1

        try:
            with transport_errors("GET", url):
                for row in csv_rows(response.iter_content(64 * 1024)):
                    raw_type = (row.get(col["type"]) or "").strip().upper()
                    kind = types.get(raw_type)
                    if kind is None:
                        drop("other_types")
                        continue
                    cid = (row.get(col["correlation_id"]) or "").strip()
                    if cid and (cid, kind) in seen:
                        drop("duplicate_rows")
                        continue
                    seen.add((cid, kind))
                    at = ms_to_iso(row.get(col["event_time"])) or \
                        ms_to_iso(row.get(col["server_time"]))
                    if not at:
                        drop("rows_without_time")
                        continue
                    key = next((v.strip() for c in self.id_columns
                                if (v := row.get(c) or "").strip()), "")
                    detail = {k: row[k] for k in ("device", "url", "link")
                              if row.get(k)}
                    out.append(EngagementEvent(
                        type=kind, key=key, at=at, correlation_id=cid,
                        address=(row.get(col["address"]) or "").strip(),
                        campaign=(row.get(col["campaign"]) or "").strip(),
                        subject=(row.get("subject") or "").strip(), detail=detail))
        finally:
            response.close()
        self._count("rows", len(out))
        return out
