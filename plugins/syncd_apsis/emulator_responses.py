"""Response data in the APSIS One emulator: the SMS event export, expiring download URLs and
``header_auth`` for every event export, events of unknown addresses, and an automation-call
sender. A mixin of :class:`syncd_apsis.emulator.ApsisEmulator` (``apis.md`` 3.6).

- Downloads [DOC]: a completed export's ``file_download_url`` carries a signature and its
  expiry (``file_download_url_expires_at``, ``download_url_ttl`` seconds, default 3600);
  a download with a bad or expired signature is 403 (as a pre-signed URL is). An export
  requested with ``"header_auth": true`` gets a URL without a signature: the status answer
  carries the credential in an ``x-apsis-auth`` header, and the download needs it back
  (403 without it).
- SMS export (GAP: no SMS export in the public docs): ``POST {sms_export_path}``,
  ``GET {sms_export_path}/{id}``, ``GET {sms_export_path}/{id}/file``, like the e-mail export
  (1 request a minute shared with it, ``export_delay``, decoration attributes); rows have the
  e-mail export's base columns, ``address`` the mobile number, ``type`` one of
  :data:`SMS_TYPES`. Switch ``sms_export_path`` (default ``/sms/reports``).
- :meth:`ResponseExports.record_unknown` records an e-mail event of an address no profile
  has (its decoration columns are empty): the consumer must count it, not lose it silently.
- :meth:`ResponseExports.send_automation_call` plays an automation flow's webhook step: a
  JSON POST with ``Authorization: Bearer <secret>`` to a URL; returns the status and body.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import hmac
import io
import secrets
import time
import uuid
from typing import Any

import requests

from syncd.plugin import Request, Router
from syncd_apsis.audience import CRM_ID, EMAIL, MOBILE
from syncd_apsis.emulator_host import ApsisHost

SMS_TYPES = ("DELIVERED", "UNDELIVERED", "OPENED", "CLICKED")
SMS_COLUMNS = ("activity_id", "activity_name", "sender", "address", "type", "correlation_id",
               "event_time", "server_time")
AUTH_HEADER = "x-apsis-auth"


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


class ResponseExports(ApsisHost):
    """Mixed into ApsisEmulator (``lock``, ``audience``, ``section``, ``sections``,
    ``problem``, ``_api``, ``_export_gate``, ``_events_rng``, ``email_events``, ``reports``,
    ``url``, ``export_delay``, ``_json_object``, ``_media_type``)."""

    def _init_response_exports(self) -> None:
        self.sms_events: list[dict[str, Any]] = []
        self.sms_export_path = "/sms/reports"
        self.download_url_ttl = 3600.0
        self._url_key = secrets.token_bytes(16)
        self.downloads_refused = 0

    # -- making events -------------------------------------------------------------------------

    def record_sms_event(self, crm_id: str, type: str, *, at: float | None = None,
                         duplicate: bool = False, zero_time: bool = False) -> dict[str, Any]:
        type = type.upper()
        if type not in SMS_TYPES:
            raise ValueError(f"unknown SMS event type {type!r} (one of {', '.join(SMS_TYPES)})")
        with self.lock:
            profile = self.audience.find(CRM_ID, crm_id)
            if profile is None:
                raise KeyError(f"no profile with CRM id {crm_id!r}")
            rng = self._events_rng
            now = time.time()
            server_time = _ms(now)
            row = {"activity_id": "sms-1", "activity_name": "Sandbox SMS",
                   "sender": "SANDBOX", "address": profile.keys.get(MOBILE) or "+3160000000",
                   "type": type,
                   "correlation_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                   "event_time": 0 if zero_time else _ms(now if at is None else at),
                   "server_time": server_time, "_crm_id": crm_id, "_pid": profile.pid}
            self.sms_events.append(row)
            if duplicate:
                self.sms_events.append({**row, "server_time": server_time + 1})
            return {k: v for k, v in row.items() if not k.startswith("_")}

    def record_unknown(self, address: str, type: str = "OPENED") -> dict[str, Any]:
        """An e-mail event of an address no profile has (empty decoration columns)."""
        with self.lock:
            rng = self._events_rng
            now = _ms(time.time())
            row = {"activity_id": "unknown", "split_id": "", "activity_name": "Sandbox newsletter",
                   "split_activity_name": "", "sender": "news@sandbox.test",
                   "subject": "News from the sandbox", "address": address, "variation": "A",
                   "type": type.upper(),
                   "correlation_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                   "event_time": now, "server_time": now, "device": "",
                   "topic_discriminator": "", "_crm_id": "", "_pid": None}
            self.email_events.append(row)
            return row

    # -- downloads -----------------------------------------------------------------------------

    def _signature(self, report_id: str, expires: int) -> str:
        return hmac.new(self._url_key, f"{report_id}:{expires}".encode(),
                        hashlib.sha256).hexdigest()[:32]

    def completed_answer(self, report: dict[str, Any], base: str):
        """The status answer of a completed export: a signed, expiring URL, or (header_auth)
        a plain URL and the credential in the ``x-apsis-auth`` header."""
        now = time.time()
        expires = int(now + self.download_url_ttl)
        url = f"{self.url}{base}/{report['report_id']}/file"
        headers = {}
        if report.get("header_auth"):
            report.setdefault("auth", secrets.token_urlsafe(18))
            headers[AUTH_HEADER] = report["auth"]
        else:
            url += f"?expires={expires}&signature={self._signature(report['report_id'], expires)}"
        body = {"report_id": report["report_id"], "status": "completed",
                "file_download_url": url,
                "file_download_url_expires_at": _iso(expires),
                "file_expires_at": _iso(report["requested"] + 7 * 86400)}
        return 200, body, headers

    def check_download(self, request: Request, report: dict[str, Any]) -> None:
        if report.get("header_auth"):
            given = request.header(AUTH_HEADER) or ""
            if not report.get("auth") or not hmac.compare_digest(given, report["auth"]):
                self.downloads_refused += 1
                raise self.problem(403, f"missing or wrong {AUTH_HEADER} header")
            return
        try:
            expires = int((request.query.get("expires") or ["0"])[0])
        except ValueError:
            expires = 0
        signature = (request.query.get("signature") or [""])[0]
        good = self._signature(report["report_id"], expires)
        if not hmac.compare_digest(signature, good) or expires < time.time():
            self.downloads_refused += 1
            raise self.problem(403, "the download URL is expired or its signature is wrong")

    def backlog(self, crm_ids: list[str], count: int, types: tuple[str, ...] = (
            "SENT", "DELIVERED", "OPENED", "CLICKED"), span: float = 7 * 86400.0) -> int:
        """``count`` e-mail events of the profiles ``crm_ids`` (round robin), their event
        times spread over the last ``span`` seconds and recorded now (a backlog after a week
        offline, for benchmarks); returns how many were recorded."""
        with self.lock:
            found = [(c, self.audience.find(CRM_ID, c)) for c in crm_ids]
            profiles = [(c, p) for c, p in found if p is not None]
            if not profiles:
                return 0
            now = time.time()
            rng = self._events_rng
            for i in range(count):
                crm_id, profile = profiles[i % len(profiles)]
                kind = types[i % len(types)]
                self.email_events.append({
                    "activity_id": "backlog", "split_id": "", "activity_name": "Weekly news",
                    "split_activity_name": "", "sender": "news@sandbox.test",
                    "subject": "Weekly news", "address": profile.keys.get(EMAIL, ""),
                    "variation": "A", "type": kind,
                    "correlation_id": f"{rng.getrandbits(64):016x}",
                    "event_time": _ms(now - span + span * i / count), "server_time": _ms(now),
                    "device": "", "topic_discriminator": "", "_crm_id": crm_id,
                    "_pid": profile.pid})
            return count

    def _control_events(self, request: Request):
        body = request.json()
        return {"recorded": self.backlog([str(c) for c in body.get("crm_ids") or []],
                                         int(body.get("count") or 0),
                                         tuple(body.get("types") or ("SENT", "DELIVERED",
                                                                     "OPENED", "CLICKED")))}

    # -- the SMS export ------------------------------------------------------------------------

    def setup_response_routes(self, router: Router) -> None:
        router.add("POST", "/_emulator/events", self._control_events)
        api = self._api
        base = self.sms_export_path.rstrip("/")
        router.add("POST", base, api(self._create_sms_report))
        router.add("GET", base + "/{report_id}", api(self._get_sms_report))
        router.add("GET", base + "/{report_id}/file", api(self._download_sms_report))

    def _create_sms_report(self, request: Request):
        from syncd_apsis.emulator_events import parse_iso

        self._media_type(request)
        body = self._json_object(request)
        try:
            start = parse_iso(body.get("start_at"))
            end = parse_iso(body["end_at"]) if body.get("end_at") else time.time()
        except ValueError:
            raise self.problem(400, "start_at and end_at must be ISO-8601 times") from None
        if end <= start:
            raise self.problem(400, "end_at must be after start_at")
        attributes = body.get("attributes") or []
        if not isinstance(attributes, list) or not all(isinstance(a, str) for a in attributes):
            raise self.problem(400, "attributes must be a list of attribute discriminators")
        self._export_gate(request)
        lo, hi = _ms(start), _ms(end)
        rows = []
        for event in self.sms_events:
            if lo <= event["server_time"] < hi:
                row = {k: v for k, v in event.items() if not k.startswith("_")}
                for name in attributes:
                    row[name] = event["_crm_id"] if name.endswith("crmid") else ""
                rows.append(row)
        report_id = str(uuid.uuid4())
        self.reports[report_id] = {
            "report_id": report_id, "requested": time.time(), "sms": True,
            "header_auth": bool(body.get("header_auth")),
            "columns": [*SMS_COLUMNS, *attributes], "rows": rows}
        return 201, {"report_id": report_id, "status": "pending"}

    def _sms_report(self, request: Request) -> dict[str, Any]:
        report = self.reports.get(request.params["report_id"])
        if report is None or not report.get("sms"):
            raise self.problem(404, f"no report {request.params['report_id']}")
        return report

    def _get_sms_report(self, request: Request):
        report = self._sms_report(request)
        if time.time() - report["requested"] < self.export_delay:
            return {"report_id": report["report_id"], "status": "pending"}
        return self.completed_answer(report, self.sms_export_path.rstrip("/"))

    def _download_sms_report(self, request: Request):
        report = self._sms_report(request)
        self.check_download(request, report)
        return 200, export_file(report), {
            "Content-Disposition": f'attachment; filename="{report["report_id"]}.csv.gz"'}, \
            "application/gzip"

    # -- the automation flow -------------------------------------------------------------------

    @staticmethod
    def send_automation_call(url: str, secret: str, call: dict[str, Any],
                             timeout: float = 10.0) -> tuple[int, dict[str, Any]]:
        """POST an automation flow's call (JSON) with its bearer secret; ``(status, body)``."""
        response = requests.post(url, json=call, timeout=timeout,
                                 headers={"Authorization": f"Bearer {secret}"})
        try:
            body = response.json()
        except ValueError:
            body = {"text": response.text}
        return response.status_code, body


def export_file(report: dict[str, Any]) -> bytes:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=report["columns"], extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(report["rows"])
    return gzip.compress(text.getvalue().encode("utf-8"), mtime=0)


def _iso(seconds: float) -> str:
    from syncd_apsis.emulator_events import _iso as iso

    return iso(seconds)
