"""Profile imports (Import v2) of the APSIS One emulator (``apis.md`` 3.7). A mixin of
:class:`syncd_apsis.emulator.ApsisEmulator`.

- ``POST /v2/audience/sections/{section}/imports`` with a JSON body -> 201 ``{"import_id",
  "file_upload_url", "file_upload_url_expires_at"}``. Body (GAP: the public material names
  only ``keyspace_mappings[].keyspace_discriminator``; the rest is invented here)::

      {"keyspace_mappings": [{"keyspace_discriminator": ks, "field_selector": column}],
       "attribute_mappings": [{"attribute_discriminator": d, "field_selector": column}],
       "tag_mappings": [{"tag_discriminator": t, "field_selector": column}],
       "consent_mappings": [{"topic_discriminator": t, "channel_discriminator": c,
                             "field_selector": column}],
       "options": {"update_existing_profiles": true, "clear_existing_attributes": false,
                   "create_new_profiles": true},
       "file_type": "text/csv"}

  One keyspace mapping (the profile key; GAP: APSIS may accept several). Unknown attributes,
  topics, channels or keyspaces -> 400 for the whole import.
- ``PUT {file_upload_url}``: the CSV bytes (UTF-8, a header row naming the field selectors).
  Pre-signed: no bearer, an unguessable token in the URL; 403 once expired, 409 when a file
  was already uploaded, 413 over ``max_import_file`` bytes (APSIS: 50 MB).
- ``GET /audience/sections/{section}/imports/{import_id}`` (also under ``/v2``) ->
  ``{"import_id", "status": "waiting_for_file" | "processing" | "completed" | "failed",
  "result": {"created", "updated", "failed", "errors": [{"row", "profile_key", "reason"}]}}``
  (GAP: the result shape is invented; ``row`` is the 1-based data row, the header excluded),
  plus ``"error"`` when the whole import failed.

Processing happens ``import_delay`` seconds after the upload (lazily: on the next look at the
import), in :mod:`syncd_apsis.emulator_import_rows`. Each row is applied as the single-profile paths would: the profile is created when
missing, the attributes merge (an empty cell leaves the attribute alone, or clears it when
``clear_existing_attributes`` is true: GAP, the option's exact meaning is not public), tag
cells ``true``/``false`` set or remove the tag, consent cells ``opt-in``/``opt-out`` set the
consent (an empty tag or consent cell changes nothing). A row fails alone, with a reason, when
its key is empty or unknown (``create_new_profiles`` false), a value does not fit (a tag not
true/false, a consent not opt-in/opt-out, a number attribute that is not a number), or its
keys conflict with another profile's. Cells are text: they are stored as the attribute's
defined type says (``string`` keeps the text).

Limits (``apis.md`` 3.7): ``import_requests_per_minute`` import creations per minute (APSIS:
10; 0 = off) and ``max_pending_imports`` imports waiting for a file or processing (APSIS: 3;
0 = off) -> 429 with ``Retry-After`` (unless ``send_retry_after`` is off). Only creations
count towards the minute (GAP: whether status polls do is not public); creations and polls
spend the account's requests-per-second budget, rows do not. A creation sent before a
``Retry-After`` it was given ran out counts in ``stats()["retry_after_violations"]`` (and
``import_violations``). An import whose upload URL expired without a file fails.

Tests: :meth:`ImportsApi.configure_imports` (or ``POST /_emulator/settings``), and
``fail_next_imports`` (a list of reasons: the next processed imports fail with them).
"""

from __future__ import annotations

import math
import secrets
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

from syncd.plugin import Request, Router, retry_after_header
from syncd_apsis.emulator_host import ApsisHost
from syncd_apsis.emulator_import_rows import RowError, apply_rows

IMPORT_SETTINGS = ("import_requests_per_minute", "max_pending_imports", "import_delay",
                   "max_import_file", "import_upload_ttl")
PENDING = ("waiting_for_file", "processing")


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


class ImportsApi(ApsisHost):
    """The import half of the APSIS One emulator (mixed into ApsisEmulator)."""

    def _init_imports(self) -> None:
        self.imports: dict[str, dict[str, Any]] = {}
        self._uploads: dict[str, str] = {}  # upload token -> import id
        #: import creations a minute (0: no limit; APSIS: 10)
        self.import_requests_per_minute = 10
        #: imports waiting for a file or processing, account-wide (0: no limit; APSIS: 3)
        self.max_pending_imports = 3
        #: seconds between the upload and the import's completion
        self.import_delay = 0.2
        #: largest file accepted (APSIS: 50 MB)
        self.max_import_file = 50 * 1024 * 1024
        #: seconds an upload URL is valid
        self.import_upload_ttl = 3600.0
        #: reasons the next processed imports fail with (tests)
        self.fail_next_imports: list[str] = []
        self.imports_created = 0
        self.imports_throttled = 0
        self.import_violations = 0
        self.import_rows = 0
        self._import_times: deque[float] = deque()  # monotonic times of accepted creations

    def configure_imports(self, **values: Any) -> dict[str, Any]:
        """Set any of :data:`IMPORT_SETTINGS`; returns them all."""
        for key, value in values.items():
            if key not in IMPORT_SETTINGS:
                raise ValueError(f"unknown import setting {key!r}")
            kind = int if key in ("import_requests_per_minute", "max_pending_imports",
                                  "max_import_file") else float
            setattr(self, key, kind(value))
        return {n: getattr(self, n) for n in IMPORT_SETTINGS}

    def setup_import_routes(self, router: Router) -> None:
        api = self._api
        router.add("POST", "/v2/audience/sections/{section}/imports", api(self._create_import))
        for prefix in ("", "/v2"):
            router.add("GET", f"{prefix}/audience/sections/{{section}}/imports/{{import_id}}",
                       api(self._get_import))
        router.add("PUT", "/uploads/imports/{token}", self._upload_import)

    # -- creating ------------------------------------------------------------------------------

    def _mappings(self, body: dict[str, Any], name: str, fields: tuple[str, ...]) -> list[dict]:
        items = body.get(name) or []
        if not isinstance(items, list):
            raise self.problem(400, f"{name} must be a list")
        for item in items:
            if not isinstance(item, dict) or not all(
                    isinstance(item.get(f), str) and item.get(f) for f in fields):
                raise self.problem(400, f"each of {name} needs {', '.join(fields)}")
        return items

    def _create_import(self, request: Request):
        section = request.params["section"]
        self._media_type(request)
        body = self._json_object(request)
        if body.get("file_type", "text/csv") != "text/csv":
            raise self.problem(400, "file_type must be text/csv")
        keyspaces = self._mappings(body, "keyspace_mappings",
                                   ("keyspace_discriminator", "field_selector"))
        if len(keyspaces) != 1:
            raise self.problem(400, "exactly one keyspace mapping is supported")
        if keyspaces[0]["keyspace_discriminator"] not in self.keyspaces:
            raise self.problem(400, f"unknown keyspace {keyspaces[0]['keyspace_discriminator']}")
        attributes = self._mappings(body, "attribute_mappings",
                                    ("attribute_discriminator", "field_selector"))
        defined = self.sections[section]["attributes"]
        unknown = [m["attribute_discriminator"] for m in attributes
                   if m["attribute_discriminator"] not in defined]
        if unknown:
            raise self.problem(400, f"attribute {', '.join(unknown)} is not defined in "
                                    f"section {section}")
        tags = self._mappings(body, "tag_mappings", ("tag_discriminator", "field_selector"))
        consents = self._mappings(body, "consent_mappings", (
            "topic_discriminator", "channel_discriminator", "field_selector"))
        topics = self.sections[section]["topics"]
        for m in consents:
            if m["topic_discriminator"] not in topics:
                raise self.problem(400, f"topic {m['topic_discriminator']!r} not found in "
                                        f"section {section}")
            if m["channel_discriminator"] not in topics[m["topic_discriminator"]][
                    "channel_discriminators"]:
                raise self.problem(400, f"unknown channel_discriminator "
                                        f"{m['channel_discriminator']!r}")
        options = body.get("options") or {}
        if not isinstance(options, dict) or not all(isinstance(v, bool)
                                                    for v in options.values()):
            raise self.problem(400, "options must be an object of true/false values")
        self._import_gate(request)  # a refused request (400) does not use the minute
        now = time.time()
        import_id = secrets.token_hex(16)
        token = secrets.token_urlsafe(32)
        expires = now + self.import_upload_ttl
        self.imports[import_id] = {
            "import_id": import_id, "section": section, "status": "waiting_for_file",
            "created": now, "expires": expires, "token": token, "uploaded": None,
            "keyspace": keyspaces[0], "attributes": attributes, "tags": tags,
            "consents": consents, "options": {"update_existing_profiles": True,
                                              "clear_existing_attributes": False,
                                              "create_new_profiles": True, **options},
            "file": None, "result": None, "error": None}
        self._uploads[token] = import_id
        self.imports_created += 1
        return 201, {"import_id": import_id,
                     "file_upload_url": f"{self.url}/uploads/imports/{token}",
                     "file_upload_url_expires_at": _iso(expires)}

    def _import_gate(self, request: Request) -> None:
        """The creations-a-minute and pending-imports limits. Called under the lock."""
        if self.check_retry_after(request, scope="import"):
            with self._stats_lock:
                self.import_violations += 1
        now = time.monotonic()
        times = self._import_times
        while times and now - times[0] >= 60.0:
            times.popleft()
        wait, what = 0.0, ""
        limit = self.import_requests_per_minute
        if limit > 0 and len(times) >= limit:
            wait = 60.0 - (now - times[-limit])
            what = f"more than {limit} import requests a minute"
        elif self.max_pending_imports > 0:
            pending = [imp for imp in self.imports.values() if self._advance(imp) in PENDING]
            if len(pending) >= self.max_pending_imports:
                wall = time.time()
                due = [imp["uploaded"] + self.import_delay - wall for imp in pending
                       if imp["status"] == "processing"]
                wait = min(due) if due else max(1.0, self.import_delay)
                what = (f"{len(pending)} imports are pending (at most "
                        f"{self.max_pending_imports} at a time)")
        if wait or what:
            wait = max(0.05, math.ceil(wait * 1000) / 1000)
            with self._stats_lock:
                self.imports_throttled += 1
            error = self.problem(429, what)
            if self.send_retry_after:
                self.remember_retry_after(request, wait, scope="import")
                error.headers["Retry-After"] = retry_after_header(wait)
            raise error
        times.append(now)

    # -- uploading -----------------------------------------------------------------------------

    def _upload_import(self, request: Request):
        """The pre-signed upload URL: no bearer, the token is the credential."""
        with self.lock:
            import_id = self._uploads.get(request.params.get("token", ""))
            imp = self.imports.get(import_id) if import_id else None
            if imp is None:
                raise self.problem(403, "invalid upload URL")
            if time.time() > imp["expires"]:
                raise self.problem(403, "the upload URL expired")
            if imp["status"] != "waiting_for_file":
                raise self.problem(409, "a file was already uploaded for this import")
        request.max_body = self.max_import_file  # Request raises 413 past it
        data = request.body
        with self.lock:
            if imp["status"] != "waiting_for_file":
                raise self.problem(409, "a file was already uploaded for this import")
            imp.update(file=data, status="processing", uploaded=time.time())
        return 200, {}

    # -- status and processing -----------------------------------------------------------------

    def _get_import(self, request: Request):
        imp = self.imports.get(request.params["import_id"])
        if imp is None or imp["section"] != request.params["section"]:
            raise self.problem(404, f"no import {request.params['import_id']}")
        self._advance(imp)
        out: dict[str, Any] = {"import_id": imp["import_id"], "status": imp["status"]}
        if imp["result"] is not None:
            out["result"] = imp["result"]
        if imp["error"]:
            out["error"] = imp["error"]
        return out

    def process_imports(self) -> None:
        """Process every import that is due now (tests: instead of waiting for a poll)."""
        with self.lock:
            for imp in list(self.imports.values()):
                self._advance(imp)

    def _advance(self, imp: dict[str, Any]) -> str:
        """Bring an import's status up to now (processes it when due). Under the lock."""
        now = time.time()
        if imp["status"] == "waiting_for_file" and now > imp["expires"]:
            imp.update(status="failed", error="no file was uploaded before the upload URL "
                                              "expired")
        elif imp["status"] == "processing" and now - imp["uploaded"] >= self.import_delay:
            if self.fail_next_imports:
                imp.update(status="failed", error=self.fail_next_imports.pop(0), file=None)
            else:
                try:
                    imp["result"] = self._apply(imp)
                    imp["status"] = "completed"
                except RowError as exc:  # the file as a whole is unusable
                    imp.update(status="failed", error=str(exc))
                imp["file"] = None
        return imp["status"]

    def _apply(self, imp: dict[str, Any]) -> dict[str, Any]:
        result = apply_rows(imp, self.sections[imp["section"]], self.audience, self._modified)
        with self._stats_lock:
            self.import_rows += result["created"] + result["updated"] + result["failed"]
        return result

    # -- accessors -------------------------------------------------------------------------------

    def import_stats(self) -> dict[str, int]:
        with self._stats_lock:
            return {"imports_created": self.imports_created,
                    "imports_throttled": self.imports_throttled,
                    "import_violations": self.import_violations,
                    "import_rows": self.import_rows}

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out.update(self.import_stats())
        return out
