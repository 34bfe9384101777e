"""The APSIS client's asynchronous jobs (a mixin of :class:`syncd_apsis.client.ApsisClient`):
the e-mail event export (``apis.md`` 3.6) on ``exports_http`` and profile imports (3.7) on
``imports_http``. Both share the account's ``Retry-After`` holds; the 429s of their own
limits (1 export request a minute; 10 import requests a minute, 3 pending) hold only their
scope (``export``, ``import``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from syncd.plugin import HttpClient, RemoteError, parse_retry_after

PROBLEM = "application/problem+json"
#: Retry-After scopes of the endpoints whose limits are their own (``apis.md`` 3.8: event
#: exports 1/min, imports 10/min and 3 pending). Any other 429 holds the whole account.
EXPORT_SCOPE = "export"
IMPORT_SCOPE = "import"


def segment(value: str) -> str:
    """One URL path segment: every reserved character encoded (``a@a.com`` -> ``a%40a.com``)."""
    return quote(str(value), safe="")


class ExportsAndImports:
    """Needs ``base_url``, ``exports_http`` and ``imports_http``."""

    base_url: str
    exports_http: HttpClient
    imports_http: HttpClient

    # -- e-mail event export (apis.md 3.6) --------------------------------------------------------

    def create_email_report(self, start_at: str, end_at: str | None = None, *,
                            attributes: tuple[str, ...] = ()) -> tuple[str | None, float | None]:
        """Request an e-mail event export. Returns ``(report_id, None)``, or ``(None,
        seconds)`` when APSIS answered 429 (1 export request a minute): ``seconds`` is its
        ``Retry-After`` (None when it sent none). Other errors raise RemoteError."""
        body: dict[str, Any] = {"start_at": start_at}
        if end_at is not None:
            body["end_at"] = end_at
        if attributes:
            body["attributes"] = list(attributes)
        response = self.exports_http.request(
            "POST", "/emails/reports", ok=(429,), json=body, scope=EXPORT_SCOPE,
            headers={"Accept": f"{PROBLEM}, application/json"})
        if response.status_code == 429:
            return None, parse_retry_after(response.headers.get("Retry-After"))
        data = response.json()
        report_id = data.get("report_id") or data.get("id")
        if not report_id:
            raise RemoteError("POST /emails/reports answered without a report_id",
                              status=response.status_code, retryable=True)
        return str(report_id), None

    def email_report(self, report_id: str) -> dict[str, Any]:
        """The export's status: ``{"status": "pending" | "completed" | ..., "file_download_url"
        ...}``."""
        return self.exports_http.request(
            "GET", f"/emails/reports/{segment(report_id)}",
            headers={"Accept": f"{PROBLEM}, application/json"}).json()

    def download(self, url: str, headers: Mapping[str, str] | None = None) -> requests.Response:
        """GET an export file, streamed (the caller closes the response). The bearer goes only
        to the API's own host: a pre-signed URL elsewhere carries its own credential."""
        same_host = urlsplit(url).netloc in ("", urlsplit(self.base_url).netloc)
        return self.exports_http.request("GET", url, auth=same_host, stream=True,
                                         headers=dict(headers or {}))

    # -- profile imports (apis.md 3.7) ----------------------------------------------------------

    def create_import(self, section: str, body: Mapping[str, Any]
                      ) -> tuple[dict[str, Any] | None, float | None]:
        """Request an import. Returns ``(answer, None)`` with ``import_id`` and
        ``file_upload_url``, or ``(None, seconds)`` when APSIS answered 429 (10 import
        requests a minute, 3 pending imports): ``seconds`` is its ``Retry-After`` (None when
        it sent none). Other errors raise RemoteError."""
        response = self.imports_http.request(
            "POST", f"/v2/audience/sections/{segment(section)}/imports", ok=(429,),
            json=dict(body), scope=IMPORT_SCOPE, headers={"Accept": f"{PROBLEM}, application/json"})
        if response.status_code == 429:
            return None, parse_retry_after(response.headers.get("Retry-After"))
        data = response.json()
        if not data.get("import_id") or not data.get("file_upload_url"):
            raise RemoteError("POST imports answered without import_id or file_upload_url",
                              status=response.status_code, retryable=True)
        return data, None

    def upload_import_file(self, url: str, data: bytes) -> None:
        """PUT the CSV to the pre-signed upload URL: it carries its own credential, so no
        bearer goes with it. A 409 (a retry after a lost answer: the file is there) is fine."""
        self.imports_http.request("PUT", url, auth=False, ok=(409,), data=data,
                                  headers={"Content-Type": "text/csv"},
                                  endpoint="{file_upload_url}")

    def import_status(self, section: str, import_id: str) -> dict[str, Any]:
        """``{"status": "waiting_for_file" | "processing" | "completed" | "failed",
        "result": {...}}`` (429s are retried after their Retry-After)."""
        path = f"/audience/sections/{segment(section)}/imports/{segment(import_id)}"
        return self.imports_http.request(
            "GET", path, headers={"Accept": f"{PROBLEM}, application/json"}).json()
