"""E-mail events and the asynchronous e-mail event export of the APSIS One emulator
(``apis.md`` 3.6). A mixin of :class:`syncd_apsis.emulator.ApsisEmulator`.

Events are made by tests and the sandbox, as recipients would make them:

- :meth:`EmailEvents.unsubscribe` plays a recipient clicking "unsubscribe": the profile's
  consent for the topic becomes ``opt-out`` and an ``UNSUBSCRIBED`` event is recorded;
- :meth:`EmailEvents.record_event` records ``SENT``/``DELIVERED``/``OPENED``/``CLICKED``/
  ``BOUNCED``/``ABUSE`` (or any) event of a profile.

Each event has the profile's e-mail address, a ``correlation_id``, ``event_time`` (ms since the
epoch, when it happened) and ``server_time`` (ms, when APSIS recorded it). Realistic quirks,
deterministic for the emulator's seed: a share of events (``duplicate_rate``) is recorded twice
with the same ``correlation_id`` (a retry), a share (``zero_time_rate``) has ``event_time = 0``
(unknown).

The export:

- ``POST /emails/reports`` ``{"start_at": ISO, "end_at"?: ISO, "attributes"?: [discriminator,
  ...], "tags"?, "segment_filter"?}`` -> 201 ``{"report_id", "status": "pending"}``. The rows
  are the events whose ``server_time`` is in ``[start_at, end_at)`` (GAP: whether APSIS
  filters on ``server_time`` or ``event_time`` is not documented), taken when the export is
  requested. ``end_at`` defaults to now.
- ``GET /emails/reports/{report_id}`` -> ``pending`` until ``export_delay`` seconds passed, then
  ``completed`` with ``file_download_url``, ``file_download_url_expires_at``,
  ``file_expires_at``.
- ``GET /emails/reports/{report_id}/file`` (GAP: the real URL is a pre-signed one on another
  host; this one is served here and needs the same bearer) -> a gzip CSV with the columns
  :data:`BASE_COLUMNS`, then :data:`TOPIC_COLUMN` (GAP: invented; the topic of an
  ``UNSUBSCRIBED`` row, empty for other types), then one column per requested attribute,
  named by its discriminator (GAP: the real decoration column names are not documented),
  holding the profile's value (``com.apsis1.attributes.crmid``: the CRM id).
- Switches for those GAPs (attributes, set before requests): ``export_topic_column`` (the
  name of the topic column, default :data:`TOPIC_COLUMN`; ``""``: the file has no topic
  column, as if APSIS did not say which topic an unsubscribe was for) and
  ``export_attribute_columns`` (``"discriminator"``, the default: a decoration column is
  named ``com.apsis1.attributes.crmid``; ``"name"``: ``crmid``). The connector's options
  ``export_topic_column`` and ``export_crm_id_column`` name what it reads.
- Limit: APSIS allows 1 event export request a minute. ``export_interval`` (seconds between
  two export requests of the account; 0 = off, the default here; 60 = APSIS) answers a request
  that comes sooner with 429 + ``Retry-After``. A request sent before a ``Retry-After`` it was
  given ran out counts in ``stats()["retry_after_violations"]`` (and ``export_violations``).
  Only export requests are held by it: the rest of the API keeps answering.

Settings: :meth:`EmailEvents.configure_exports` (or the attributes of the same names).
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import random
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from syncd.plugin import Request, Router, retry_after_header
from syncd_apsis.audience import CRM_ID, EMAIL, NotFound
from syncd_apsis.emulator_host import ApsisHost

EMAIL_CHANNEL = "com.apsis1.channels.email"
EVENT_TYPES = ("SENT", "DELIVERED", "OPENED", "CLICKED", "BOUNCED", "UNSUBSCRIBED", "ABUSE")
#: The documented columns of an e-mail event export file (apis.md 3.6).
BASE_COLUMNS = ("activity_id", "split_id", "activity_name", "split_activity_name", "sender",
                "subject", "address", "variation", "type", "correlation_id", "event_time",
                "server_time", "device")
#: GAP: the column naming an UNSUBSCRIBED row's topic is invented.
TOPIC_COLUMN = "topic_discriminator"
EMAIL_ATTRIBUTE = "com.apsis1.attributes.email"
CRMID_ATTRIBUTE = "com.apsis1.attributes.crmid"
DEVICES = ("desktop", "mobile", "tablet")


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def parse_iso(text: Any) -> float:
    """Epoch seconds of an ISO-8601 time (UTC when it has no offset); ValueError if bad."""
    if not isinstance(text, str) or not text:
        raise ValueError("not a time")
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


class EmailEvents(ApsisHost):
    """The e-mail event half of the APSIS One emulator (mixed into ApsisEmulator)."""

    def _init_email_events(self, seed: int | None) -> None:
        self.email_events: list[dict[str, Any]] = []
        self.reports: dict[str, dict[str, Any]] = {}
        #: seconds before an export is completed
        self.export_delay = 0.2
        #: seconds between two export requests of the account (0: no limit; APSIS: 60)
        self.export_interval = 0.0
        #: share of events recorded twice with one correlation_id
        self.duplicate_rate = 0.1
        #: share of events with event_time = 0
        self.zero_time_rate = 0.1
        #: GAP switches: the topic column's name ("" = none), decoration column names
        self.export_topic_column = TOPIC_COLUMN
        self.export_attribute_columns = "discriminator"  # or "name"
        self.export_violations = 0
        self.exports_requested = 0
        self.exports_throttled = 0
        self._events_rng = random.Random(f"apsis-events-{seed}" if seed is not None else None)
        self._last_export: float | None = None  # monotonic time of the last accepted request
        self._activity = str(uuid.UUID(int=self._events_rng.getrandbits(128), version=4))

    def configure_exports(self, **values: Any) -> dict[str, Any]:
        """Set any of ``export_delay``, ``export_interval``, ``duplicate_rate``,
        ``zero_time_rate``; returns them all."""
        names = ("export_delay", "export_interval", "duplicate_rate", "zero_time_rate")
        for key, value in values.items():
            if key not in names:
                raise ValueError(f"unknown export setting {key!r}")
            setattr(self, key, float(value))
        return {n: getattr(self, n) for n in names}

    # -- making events (tests, sandbox) ------------------------------------------------------

    def record_event(self, crm_id: str, type: str, *, topic: str | None = None,
                     at: float | None = None, duplicate: bool | None = None,
                     zero_time: bool | None = None) -> dict[str, Any]:
        """Record an e-mail event of the profile with CRM id ``crm_id`` and return its row.
        ``at`` (epoch seconds) is when it happened (default: now); ``duplicate`` /
        ``zero_time`` force a quirk on or off (default: by the seeded rates). KeyError when
        there is no such profile."""
        type = type.upper()
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r} (one of {', '.join(EVENT_TYPES)})")
        with self.lock:
            profile = self.audience.find(CRM_ID, crm_id)
            if profile is None:
                raise KeyError(f"no profile with CRM id {crm_id!r}")
            attrs = profile.attributes.get(self.section, {})
            address = attrs.get(EMAIL_ATTRIBUTE) or profile.keys.get(EMAIL) or ""
            rng = self._events_rng
            now = time.time()
            if duplicate is None:
                duplicate = rng.random() < self.duplicate_rate
            if zero_time is None:
                zero_time = rng.random() < self.zero_time_rate
            server_time = _ms(now)
            row = {
                "activity_id": self._activity, "split_id": "",
                "activity_name": "Sandbox newsletter", "split_activity_name": "",
                "sender": "news@sandbox.test", "subject": "News from the sandbox",
                "address": address, "variation": "A", "type": type,
                "correlation_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "event_time": 0 if zero_time else _ms(now if at is None else at),
                "server_time": server_time,
                "device": rng.choice(DEVICES) if type in ("OPENED", "CLICKED") else "",
                TOPIC_COLUMN: (topic or "") if type == "UNSUBSCRIBED" else "",
                "_crm_id": crm_id, "_pid": profile.pid,
            }
            self.email_events.append(row)
            if duplicate:  # a retry on APSIS' side: same correlation id, recorded again
                self.email_events.append({**row, "server_time": server_time + 1})
            return {k: v for k, v in row.items() if not k.startswith("_")}

    def unsubscribe(self, crm_id: str, topic: str, channel: str | None = None, *,
                    at: float | None = None, duplicate: bool | None = None,
                    zero_time: bool | None = None) -> dict[str, Any] | None:
        """A recipient clicks "unsubscribe": the profile's consent for ``topic`` on
        ``channel`` becomes opt-out, and (e-mail) an UNSUBSCRIBED event is recorded; returns
        its row (None for SMS: the SMS export is a GAP). KeyError for an unknown profile,
        ValueError for an unknown topic or channel."""
        email_channel = self.channel_discriminators[0]
        channel = channel or email_channel
        with self.lock:
            section = self.section
            if topic not in self.sections[section]["topics"]:
                raise ValueError(f"topic {topic!r} not found in section {section}")
            if channel not in self.sections[section]["topics"][topic]["channel_discriminators"]:
                raise ValueError(f"unknown channel {channel!r}")
            try:
                profile = self.audience.get(CRM_ID, crm_id)
            except NotFound:
                raise KeyError(f"no profile with CRM id {crm_id!r}") from None
            self.audience.set_consent(
                profile, section, topic, channel,
                {"type": "opt-out", "reason": "unsubscribe link", "source": "email"})
            if channel != email_channel:
                return None
            return self.record_event(crm_id, "UNSUBSCRIBED", topic=topic, at=at,
                                     duplicate=duplicate, zero_time=zero_time)

    # -- the export API --------------------------------------------------------------------

    def setup_event_routes(self, router: Router) -> None:
        api = self._api
        router.add("POST", "/emails/reports", api(self._create_report))
        router.add("GET", "/emails/reports/{report_id}", api(self._get_report))
        router.add("GET", "/emails/reports/{report_id}/file", api(self._download_report))

    def _export_gate(self, request: Request) -> None:
        """The 1-a-minute limit of export requests (when ``export_interval`` is set)."""
        if self.check_retry_after(request, scope="export"):
            with self._stats_lock:
                self.export_violations += 1
        now = time.monotonic()
        with self._stats_lock:
            interval, wait = self.export_interval, 0.0
            if interval > 0 and self._last_export is not None \
                    and now - self._last_export < interval:
                wait = max(0.01, math.ceil((interval - (now - self._last_export)) * 1000) / 1000)
                self.exports_throttled += 1
            else:
                self._last_export = now
                self.exports_requested += 1
        if wait:
            self.remember_retry_after(request, wait, scope="export")
            error = self.problem(429, f"more than one event export request per {interval:g} s")
            error.headers["Retry-After"] = retry_after_header(wait)
            raise error

    def _create_report(self, request: Request):
        self._media_type(request)
        body = self._json_object(request)
        try:
            start = parse_iso(body.get("start_at"))
        except ValueError:
            raise self.problem(400, "start_at must be an ISO-8601 time") from None
        try:
            end = parse_iso(body["end_at"]) if body.get("end_at") else time.time()
        except ValueError:
            raise self.problem(400, "end_at must be an ISO-8601 time") from None
        if end <= start:
            raise self.problem(400, "end_at must be after start_at")
        attributes = body.get("attributes") or []
        if not isinstance(attributes, list) or not all(isinstance(a, str) for a in attributes):
            raise self.problem(400, "attributes must be a list of attribute discriminators")
        defined = self.sections[self.section]["attributes"]
        unknown = [a for a in attributes if a not in defined]
        if unknown:
            raise self.problem(400, f"attribute {', '.join(unknown)} is not defined")
        self._export_gate(request)  # a refused request (400) does not use the minute
        lo, hi = _ms(start), _ms(end)
        rows = []
        topic_column = self.export_topic_column

        def column(name: str) -> str:
            return name.rsplit(".", 1)[-1] if self.export_attribute_columns == "name" else name

        for event in self.email_events:
            if lo <= event["server_time"] < hi:
                row = {k: v for k, v in event.items() if not k.startswith("_")}
                topic = row.pop(TOPIC_COLUMN, "")
                if topic_column:
                    row[topic_column] = topic
                profile = self.audience.profiles.get(event["_pid"])
                attrs = profile.attributes.get(self.section, {}) if profile else {}
                for name in attributes:
                    value = attrs.get(name)
                    if value is None and name == CRMID_ATTRIBUTE:
                        value = event["_crm_id"]
                    row[column(name)] = "" if value is None else value
                rows.append(row)
        report_id = str(uuid.uuid4())
        now = time.time()
        self.reports[report_id] = {"report_id": report_id, "requested": now,
                                   "columns": [*BASE_COLUMNS,
                                               *([topic_column] if topic_column else []),
                                               *map(column, attributes)],
                                   "rows": rows, "start_at": _iso(start), "end_at": _iso(end),
                                   "header_auth": bool(body.get("header_auth"))}
        return 201, {"report_id": report_id, "status": "pending"}

    def _report(self, request: Request) -> dict[str, Any]:
        report = self.reports.get(request.params["report_id"])
        if report is None:
            raise self.problem(404, f"no report {request.params['report_id']}")
        return report

    def _get_report(self, request: Request):
        report = self._report(request)
        if time.time() - report["requested"] < self.export_delay:
            return {"report_id": report["report_id"], "status": "pending"}
        # a signed URL that expires, or header_auth: emulator_responses.py
        return self.completed_answer(report, "/emails/reports")

    def _download_report(self, request: Request):
        report = self._report(request)
        if time.time() - report["requested"] < self.export_delay:
            raise self.problem(404, "the report is not completed yet")
        self.check_download(request, report)
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=report["columns"], extrasaction="ignore",
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(report["rows"])
        data = gzip.compress(text.getvalue().encode("utf-8"), mtime=0)
        return 200, data, {"Content-Disposition":
                           f'attachment; filename="{report["report_id"]}.csv.gz"'}, \
            "application/gzip"

    # -- accessors ---------------------------------------------------------------------------

    def event_stats(self) -> dict[str, int]:
        with self._stats_lock:
            return {"email_events": len(self.email_events),
                    "exports_requested": self.exports_requested,
                    "exports_throttled": self.exports_throttled,
                    "export_violations": self.export_violations}

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out.update(self.event_stats())
        return out
