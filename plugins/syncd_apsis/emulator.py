"""An APSIS One API emulator: a real HTTP server on loopback, in memory (``apis.md`` 3.9).

Strict where ``apis.md`` says [DOC] or [CODE]:

- ``POST /oauth/token``: a JSON body only (a form body -> 400), ``grant_type``,
  ``client_id``, ``client_secret`` required (400); JWT-looking tokens with ``exp``; 401 on bad
  credentials; more than ``token_limit_per_minute`` (10) a minute -> 429. Every API call
  needs a valid, unexpired bearer (401 otherwise). (3.1)
- Definitions: keyspaces (``manage_subscriptions``), sections, attributes (discriminator +
  version id), v2 topics, tags, consent 1.0 lists: :mod:`syncd_apsis.emulator_definitions`.
- Profiles (:mod:`syncd_apsis.emulator_profiles`, :mod:`syncd_apsis.audience`): merge-patch
  bodies (v1 and v2 attributes, tags) only as ``application/merge-patch+json``, JSON bodies
  (consents, merges, imports, exports) only as ``application/json`` -> 415 otherwise; v2
  attributes need an ``Accept`` allowing problem+json (406); v2 never creates (404 problem on
  a missing profile), v1 by version id creates; required fields -> 400. (3.3-3.5, 3.7)
- Limits: a body over 100 kB -> 413; ``requests_per_second`` (100) for the account and
  ``per_key_per_second`` (10) per profile key -> 429; the endpoints with limits of their own
  (token, export requests, import requests) are outside the account budget and their 429s
  hold only themselves. (3.8)
- Errors are RFC 7807 problem+json everywhere. (3.8)
- E-mail events and their export: :mod:`syncd_apsis.emulator_events`; imports (create,
  pre-signed upload, status, 3 pending, 10 a minute): :mod:`syncd_apsis.emulator_imports`.

Switches where it says [GAP] or [INFER] (constructor arguments; those marked "settable" also
at run time through ``POST /_emulator/settings``), each covered by connector tests per setting:

- ``key_429_scope`` (settable) ``"account"`` (default) | ``"key"``: what a 429 of the
  per-profile-key limit holds for ``Retry-After`` accounting, every request of the account
  or that key (3.8).
- ``send_retry_after`` (settable) True (default) | False: 429s carry ``Retry-After`` or not
  (3.8; the import limits follow it too).
- ``channels`` ``"com.apsis1"`` (default: ``com.apsis1.channels.email`` / ``.sms``) |
  ``"short"`` (``email`` / ``sms``): the channel discriminator strings (3.4).
- ``export_topic_column`` (default ``topic_discriminator``; ``""``: none) and
  ``export_attribute_columns`` ``"discriminator"`` (default) | ``"name"``: the e-mail event
  export's topic column and decoration column names (3.6).
- ``sms_export_path`` (default ``/sms/reports``): the SMS event export, a GAP (3.6), and
  the download URLs' signatures, expiry and ``header_auth``:
  :mod:`syncd_apsis.emulator_responses`.
- ``profile_reads`` (settable) ``"v2"`` (default) | ``"v1"`` | ``"none"`` and ``tag_reads``
  (settable) ``"map"`` (default) | ``"items"`` | ``"none"``: reading one profile's
  attributes and tags (3.3, 3.5), :mod:`syncd_apsis.emulator_reads`.
- ``consent_v2`` True (default) | False: consent 2.0 topics answer, or only the 1.0 lists
  (3.4).
- Faults of the base class (:class:`syncd.web.emulator.Faults`, ``POST /_emulator/faults``):
  5xx, 429 with ``Retry-After``, hangs, latency, scheduled statuses.

Control (benchmarks): ``POST /_emulator/settings`` also takes ``requests_per_second``,
``per_key_per_second`` (0: unlimited) and the import settings (``import_requests_per_minute``,
``max_pending_imports``, ``import_delay``, ``max_import_file``, ``import_upload_ttl``); ``GET
/_emulator/profile/{crm_id}`` and ``POST /_emulator/profiles`` read profiles
(:mod:`syncd_apsis.emulator_control`); ``PATCH /_emulator/profile/{crm_id}`` changes one as a
person in APSIS One would (:mod:`syncd_apsis.emulator_reads`).

Response shapes of the definitions are GAPs in the public material: they are invented here
as ``{"items": [...]}`` with the fields ``apis.md`` names.
"""

from __future__ import annotations

import hmac
import http
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote

from syncd.plugin import Emulator, HTTPError, Request, Router, TokenIssuer
from syncd_apsis.audience import CRM_ID, EMAIL, MOBILE, Audience, Conflict, NotFound
from syncd_apsis.emulator_control import KEY_429_SCOPES, ControlApi, _choice
from syncd_apsis.emulator_definitions import DefinitionsApi
from syncd_apsis.emulator_events import EmailEvents
from syncd_apsis.emulator_imports import ImportsApi
from syncd_apsis.emulator_limits import Bucket, JwtIssuer
from syncd_apsis.emulator_profiles import CHANNEL_SETS, ProfilesApi
from syncd_apsis.emulator_reads import PROFILE_READS, TAG_READS, ReadsApi
from syncd_apsis.emulator_responses import ResponseExports

DEFAULT_SECTION = "com.apsis1.sections.default"
STANDARD_ATTRIBUTES = ("email", "mobile", "crmid", "firstname", "lastname")
#: Invented extras so that a sandbox mapping of common CRM fields finds its attributes.
EXTRA_ATTRIBUTES = ("company", "jobtitle", "phone", "city", "country", "zipcode", "address",
                    "birthday", "gender", "usercreated.attributes.customer-type")
DEFAULT_TOPICS = ("com.apsis1.topics.newsletter", "com.apsis1.topics.offers",
                  "com.apsis1.topics.events")
PROFILE = "/audience/keyspaces/{ks}/profiles/{key}"
SECTION = "/sections/{section}"
class ApsisEmulator(ControlApi, ReadsApi, ProfilesApi, DefinitionsApi, ImportsApi, ResponseExports,
                    EmailEvents, Emulator):
    kind = "apsis"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, seed: int | None = None,
                 threads: int = 16, client_id: str = "syncd-sandbox",
                 client_secret: str = "sandbox-secret", section: str = DEFAULT_SECTION,
                 attributes: Iterable[str] = (), topics: Iterable[str] = DEFAULT_TOPICS,
                 token_lifetime: float = 86400.0, token_limit_per_minute: int = 10,
                 requests_per_second: float = 100.0, per_key_per_second: float = 10.0,
                 send_retry_after: bool = True, max_body: int = 100 * 1024,
                 consent_v2: bool = True, key_429_scope: str = "account",
                 channels: str = "com.apsis1", export_topic_column: str | None = None,
                 export_attribute_columns: str = "discriminator",
                 sms_export_path: str = "/sms/reports", profile_reads: str = "v2",
                 tag_reads: str = "map"):
        self.client_id = client_id
        self.consent_v2 = consent_v2
        self.client_secret = client_secret
        self.section = section
        self.tokens = JwtIssuer(token_lifetime)
        self.token_limit_per_minute = token_limit_per_minute
        self.send_retry_after = send_retry_after
        self.key_429_scope = _choice("key_429_scope", key_429_scope, KEY_429_SCOPES)
        self.channels = _choice("channels", channels, tuple(CHANNEL_SETS))
        self.profile_reads = _choice("profile_reads", profile_reads, PROFILE_READS)
        self.tag_reads = _choice("tag_reads", tag_reads, TAG_READS)
        self.audience = Audience()
        self._token_times: deque[float] = deque()
        self._account = Bucket(requests_per_second)
        self.per_key_per_second = per_key_per_second
        self._keys: dict[tuple[str, str], Bucket] = {}
        self._budget_lock = threading.Lock()
        #: profile id -> time.time() of its last successful write through the API
        self._modified: dict[int, float] = {}
        self.sections: dict[str, dict[str, Any]] = {}
        self.keyspaces = {CRM_ID: "CRM ID", EMAIL: "Email", MOBILE: "Mobile"}
        self._init_email_events(seed)  # e-mail events and their export: emulator_events.py
        if export_topic_column is not None:
            self.export_topic_column = export_topic_column
        self.export_attribute_columns = _choice("export_attribute_columns",
                                                export_attribute_columns,
                                                ("discriminator", "name"))
        self._init_imports()  # profile imports: emulator_imports.py
        self._init_response_exports()  # SMS export, signed URLs: emulator_responses.py
        self.sms_export_path = sms_export_path
        super().__init__(host, port, seed=seed, threads=threads, max_body=max_body)
        self.define_section(section)
        for name in (*STANDARD_ATTRIBUTES, *EXTRA_ATTRIBUTES, *attributes):
            self.define_attribute(name)
        for topic in topics:
            self.define_topic(topic)

    # -- definitions (for tests and the sandbox) -----------------------------------------------

    def define_section(self, discriminator: str, name: str | None = None) -> None:
        with self.lock:
            self.sections.setdefault(discriminator, {
                "discriminator": discriminator, "name": name or discriminator.rsplit(".", 1)[-1],
                "attributes": {}, "topics": {}, "tags": {}})

    def define_attribute(self, discriminator: str, section: str | None = None,
                         type: str = "string") -> str:
        """Define an attribute (a short name gets the ``com.apsis1.attributes.`` prefix);
        returns its version id."""
        if "." not in discriminator:
            discriminator = f"com.apsis1.attributes.{discriminator}"
        with self.lock:
            attrs = self.sections[section or self.section]["attributes"]
            if discriminator not in attrs:
                attrs[discriminator] = {
                    "discriminator": discriminator,
                    "name": discriminator.rsplit(".", 1)[-1],
                    "type": type,
                    "version_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                }
            return attrs[discriminator]["version_id"]

    def define_topic(self, discriminator: str, section: str | None = None) -> None:
        with self.lock:
            self.sections[section or self.section]["topics"].setdefault(discriminator, {
                "discriminator": discriminator, "name": discriminator.rsplit(".", 1)[-1],
                "channel_discriminators": list(self.channel_discriminators)})

    # -- accessors -------------------------------------------------------------------------------

    def snapshot(self, section: str | None = None) -> dict[str, dict[str, Any]]:
        with self.lock:
            return self.audience.snapshot(section or self.section)

    def profile(self, key: str, keyspace: str = CRM_ID,
                section: str | None = None) -> dict[str, Any] | None:
        with self.lock:
            p = self.audience.find(keyspace, key)
            return None if p is None else dict(p.attributes.get(section or self.section, {}))

    def keys_of(self, key: str, keyspace: str = CRM_ID) -> dict[str, str] | None:
        with self.lock:
            p = self.audience.find(keyspace, key)
            return None if p is None else dict(p.keys)

    def consents(self, key: str, keyspace: str = CRM_ID,
                 section: str | None = None) -> dict[tuple[str, str], str]:
        """``{(topic, channel): type}`` of one profile."""
        with self.lock:
            p = self.audience.find(keyspace, key)
            items = p.consents.get(section or self.section, {}) if p else {}
            return {k: v["type"] for k, v in items.items()}

    def tags(self, key: str, keyspace: str = CRM_ID,
             section: str | None = None) -> dict[str, bool]:
        with self.lock:
            p = self.audience.find(keyspace, key)
            return dict(p.tags.get(section or self.section, {})) if p else {}

    def remove(self, key: str, keyspace: str = CRM_ID) -> bool:
        """Delete a profile as a user of APSIS One would (not through the API)."""
        with self.lock:
            return self.audience.delete(keyspace, key)

    def seed(self, count: int, seed: int = 0) -> None:
        """``count`` marketing-only profiles (e-mail key, no CRM id: not in ``snapshot``)."""
        with self.lock:
            for i in range(count):
                email = f"lead{seed}-{i}@example.org"
                self.audience.write(EMAIL, email, self.section,
                                    {"com.apsis1.attributes.firstname": f"Lead {i}"},
                                    create=True)

    # -- errors ------------------------------------------------------------------------------------

    def error_body(self, status: int, message: str) -> tuple[Any, str]:
        try:
            title = http.HTTPStatus(status).phrase
        except ValueError:
            title = "Error"
        # "type" URIs are not public: about:blank is RFC 7807's default.
        return ({"type": "about:blank", "title": title, "status": status,
                 "detail": message or title}, "application/problem+json")

    def problem(self, status: int, detail: str) -> HTTPError:
        body, ctype = self.error_body(status, detail)
        return HTTPError(status, body, content_type=ctype)

    def retry_after_scope(self, request: Request) -> str:
        """Endpoints with limits of their own (``apis.md`` 3.8): their 429s hold only them."""
        path = request.path
        if path == "/oauth/token":
            return "token"
        if request.method == "POST" and path in ("/emails/reports",
                                                 self.sms_export_path.rstrip("/")):
            return "export"
        if request.method == "POST" and path.startswith("/v2/audience/sections/") \
                and path.endswith("/imports"):
            return "import"
        return ""

    def _too_many(self, request: Request, wait: float, what: str,
                  scope: str | None = None) -> HTTPError:
        wait = max(0.01, math.ceil(wait * 1000) / 1000)
        if self.send_retry_after:
            error = self.throttle(request, wait, scope)
            error.body = self.error_body(429, what)[0]
            return error
        return self.problem(429, what)

    # -- routes ------------------------------------------------------------------------------------

    def setup_routes(self, router: Router) -> None:
        router.add("POST", "/_emulator/settings", self._settings)
        router.add("GET", "/_emulator/profile/{key}", self._control_profile)
        router.add("POST", "/_emulator/profiles", self._control_profiles)
        router.add("POST", "/oauth/token", self._token)
        api = self._api
        router.add("GET", "/audience/keyspaces", api(self._get_keyspaces))
        router.add("GET", "/audience/sections", api(self._get_sections))
        router.add("GET", "/audience/sections/{section}/attributes",
                   api(lambda r: self._list(r, "attributes")))
        router.add("GET", "/audience/sections/{section}/tags", api(lambda r: self._list(r, "tags")))
        router.add("GET", "/v2/audience/sections/{section}/topics", api(self._v2_topics))
        self.setup_definition_routes(router)  # consent 1.0 lists: emulator_definitions.py
        router.add("PATCH", f"/v2{PROFILE}{SECTION}/attributes", api(self._patch_v2, True))
        router.add("PATCH", f"{PROFILE}{SECTION}/attributes", api(self._patch_v1, True))
        router.add("DELETE", f"{PROFILE}{SECTION}/attributes/{{version}}",
                   api(self._delete_attribute, True))
        router.add("POST", f"/v2{PROFILE}{SECTION}/consents", api(self._post_consent, True))
        router.add("GET", f"/v2{PROFILE}{SECTION}/consents", api(self._get_consents, True))
        router.add("PATCH", f"{PROFILE}{SECTION}/tags", api(self._patch_tags, True))
        router.add("DELETE", PROFILE, api(self._delete_profile, True))
        router.add("PUT", "/audience/profiles/merges", api(self._merge))
        self.setup_read_routes(router)  # attribute and tag reads: emulator_reads.py
        self.setup_event_routes(router)
        self.setup_response_routes(router)
        self.setup_import_routes(router)

    def __call__(self, environ, start_response):
        # Route on the raw path, so that an encoded "/" in a profile key stays in its segment;
        # the API handlers decode their parameters.
        raw = environ.get("REQUEST_URI") or ""
        if raw.startswith("/"):
            environ = {**environ, "PATH_INFO": raw.split("?", 1)[0]}
        return super().__call__(environ, start_response)

    def _api(self, handler: Callable[[Request], Any], keyed: bool = False):
        """Wraps an API handler: bearer check, account budget, per-profile-key budget."""

        def guarded(request: Request):
            request.params = {k: unquote(v) for k, v in request.params.items()}
            if not self.tokens.valid(TokenIssuer.bearer(request)):
                raise self.problem(401, "missing, invalid or expired access token")
            key_scope = None
            if keyed:
                key_scope = f"key:{request.params['ks']}/{request.params['key']}"
                self.check_retry_after(request, key_scope)
            # an endpoint with a limit of its own is not one of the "most endpoints" of the
            # 100/s account limit (apis.md 3.8): its 429s come from its own limit only
            own_limit = bool(self.retry_after_scope(request))
            with self._budget_lock:
                wait, scope = (0.0 if own_limit else self._account.take()), None
                if not wait and keyed:
                    slot = (request.params["ks"], request.params["key"])
                    bucket = self._keys.get(slot)
                    if bucket is None:
                        if len(self._keys) > 50_000:
                            self._keys.clear()
                        bucket = self._keys[slot] = Bucket(self.per_key_per_second)
                    wait = bucket.take()
                    what = "more than the allowed requests per second to one profile key"
                    scope = key_scope if self.key_429_scope == "key" else ""
                else:
                    what = "more than the allowed requests per second for the account"
            if wait:
                raise self._too_many(request, wait, what, scope)
            if keyed and request.params["ks"] not in self.keyspaces:
                raise self.problem(404, f"keyspace {request.params['ks']} not found")
            if "section" in request.params and request.params["section"] not in self.sections:
                raise self.problem(404, f"section {request.params['section']} not found")
            try:
                with self.lock:
                    result = handler(request)
                    if keyed and request.method != "GET":
                        p = self.audience.find(request.params["ks"], request.params["key"])
                        if p is not None:
                            self._modified[p.pid] = time.time()
                    return result
            except NotFound as exc:
                raise self.problem(404, str(exc)) from None
            except Conflict as exc:
                raise self.problem(409, str(exc)) from None

        return guarded

    def _token(self, request: Request):
        self.check_retry_after(request, "token")
        ctype = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise self.problem(400, "the token request must be JSON (application/json)")
        body = self._json_object(request)
        self._required(body, "grant_type", "client_id", "client_secret")
        if body.get("grant_type") != "client_credentials":
            raise self.problem(400, "grant_type must be client_credentials")
        now = time.monotonic()
        with self._budget_lock:
            while self._token_times and now - self._token_times[0] >= 60.0:
                self._token_times.popleft()
            if len(self._token_times) >= self.token_limit_per_minute:
                wait = 60.0 - (now - self._token_times[0])
                raise self._too_many(request, wait, "more than the allowed token requests per "
                                                    "minute")
            self._token_times.append(now)
        if not (hmac.compare_digest(str(body.get("client_id", "")), self.client_id)
                and hmac.compare_digest(str(body.get("client_secret", "")), self.client_secret)):
            raise self.problem(401, "invalid client credentials")
        token, lifetime = self.tokens.issue(self.client_id)
        expires_in = int(lifetime) if float(lifetime).is_integer() else lifetime
        return {"access_token": token, "expires_in": expires_in, "token_type": "Bearer"}

    # -- definitions -----------------------------------------------------------------------------

    def _get_keyspaces(self, request: Request):
        return {"items": [{"discriminator": d, "name": n, "manage_subscriptions": True}
                          for d, n in self.keyspaces.items()]}

    def _get_sections(self, request: Request):
        return {"items": [{"discriminator": s["discriminator"], "name": s["name"]}
                          for s in self.sections.values()]}

    def _list(self, request: Request, what: str):
        return {"items": [dict(v) for v in self.sections[request.params["section"]][what]
                          .values()]}
