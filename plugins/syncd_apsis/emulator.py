"""An APSIS One API emulator: a real HTTP server on loopback, in memory (``apis.md`` 3.9).

- ``POST /oauth/token`` (JSON body) issues JWT-looking tokens with ``exp``; 401 problem on bad
  credentials; more than ``token_limit_per_minute`` token requests a minute -> 429. Every API
  call needs a valid, unexpired bearer (401 problem otherwise).
- Definitions: keyspaces, sections, attributes (discriminator + version id), v2 topics, tags;
  consent 1.0 lists and the switch ``consent_v2``: see :mod:`syncd_apsis.emulator_definitions`.
- Profiles (see :mod:`syncd_apsis.audience`): v2 merge-patch attributes (no implicit create,
  415 unless ``application/merge-patch+json``), v1 PATCH by version id (creates), DELETE
  attribute by version id, DELETE profile, merges, consent 2.0 POST/GET, tags PATCH.
- Limits: body > 100 kB -> 413; ``requests_per_second`` for the account and
  ``per_key_per_second`` per profile key -> 429 (with ``Retry-After`` unless
  ``send_retry_after`` is False: APSIS does not document the header).
- Errors are problem+json everywhere. Faults and the control API come from the base class.
- E-mail events (``unsubscribe``, ``record_event``) and the e-mail event export
  (``/emails/reports``): see :mod:`syncd_apsis.emulator_events`.
- Profile imports (Import v2: create, pre-signed upload, status; 3 pending and 10 a minute):
  see :mod:`syncd_apsis.emulator_imports`.
- Control (for benchmarks): ``POST /_emulator/settings`` with any of ``requests_per_second``,
  ``per_key_per_second`` (0: unlimited), ``send_retry_after`` and the import settings
  (``import_requests_per_minute``, ``max_pending_imports``, ``import_delay``,
  ``max_import_file``, ``import_upload_ttl``); ``GET
  /_emulator/profile/{crm_id}`` and ``POST /_emulator/profiles`` (``{"keys": [...]}``) return
  a profile's attributes and ``modified_at`` (epoch seconds of its last successful write
  through the API), without touching the budgets, the faults or the request counts.

Response shapes of the definitions are GAPs in the public material: they are invented here
as ``{"items": [...]}`` with the fields ``apis.md`` names.
"""

from __future__ import annotations

import hmac
import http
import json
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote

from syncd.emulator import Emulator, TokenIssuer
from syncd.wsgi import HTTPError, Request, Router
from syncd_apsis.audience import CRM_ID, EMAIL, MOBILE, Audience, Conflict, NotFound
from syncd_apsis.emulator_definitions import DefinitionsApi
from syncd_apsis.emulator_events import EmailEvents
from syncd_apsis.emulator_imports import IMPORT_SETTINGS, ImportsApi
from syncd_apsis.emulator_limits import Bucket, JwtIssuer

DEFAULT_SECTION = "com.apsis1.sections.default"
STANDARD_ATTRIBUTES = ("email", "mobile", "crmid", "firstname", "lastname")
#: Invented extras so that a sandbox mapping of common CRM fields finds its attributes.
EXTRA_ATTRIBUTES = ("company", "jobtitle", "phone", "city", "country", "zipcode", "address",
                    "birthday", "gender", "usercreated.attributes.customer-type")
DEFAULT_TOPICS = ("com.apsis1.topics.newsletter", "com.apsis1.topics.offers",
                  "com.apsis1.topics.events")
CHANNELS = ("com.apsis1.channels.email", "com.apsis1.channels.sms")
WRITABLE_CONSENTS = ("opt-in", "opt-out")
PROFILE = "/audience/keyspaces/{ks}/profiles/{key}"
MERGE_PATCH = "application/merge-patch+json"
SECTION = "/sections/{section}"
#: GAP switch: what a 429 of the per-profile-key limit holds (the whole account, or the key).
KEY_429_SCOPES = ("account", "key")


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}")
    return str(value)


class ApsisEmulator(DefinitionsApi, ImportsApi, EmailEvents, Emulator):
    kind = "apsis"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, seed: int | None = None,
                 threads: int = 16, client_id: str = "syncd-sandbox",
                 client_secret: str = "sandbox-secret", section: str = DEFAULT_SECTION,
                 attributes: Iterable[str] = (), topics: Iterable[str] = DEFAULT_TOPICS,
                 token_lifetime: float = 86400.0, token_limit_per_minute: int = 10,
                 requests_per_second: float = 100.0, per_key_per_second: float = 10.0,
                 send_retry_after: bool = True, max_body: int = 100 * 1024,
                 consent_v2: bool = True, key_429_scope: str = "account"):
        self.client_id = client_id
        self.consent_v2 = consent_v2
        self.client_secret = client_secret
        self.section = section
        self.tokens = JwtIssuer(token_lifetime)
        self.token_limit_per_minute = token_limit_per_minute
        self.send_retry_after = send_retry_after
        self.key_429_scope = _choice("key_429_scope", key_429_scope, KEY_429_SCOPES)
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
        self._init_imports()  # profile imports: emulator_imports.py
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
                "channel_discriminators": list(CHANNELS)})

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
        if request.method == "POST" and path == "/emails/reports":
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
        self.setup_event_routes(router)
        self.setup_import_routes(router)

    # -- control (benchmarks) --------------------------------------------------------------------

    def settings(self, **values: Any) -> dict[str, Any]:
        """Change the budgets: ``requests_per_second`` (account), ``per_key_per_second``,
        ``send_retry_after``, and the import settings (:data:`IMPORT_SETTINGS`). A rate of 0
        means unlimited. Returns the current settings."""
        imports = {k: values[k] for k in IMPORT_SETTINGS if k in values}
        with self.lock:
            current_imports = self.configure_imports(**imports)
        with self._budget_lock:
            if "requests_per_second" in values:
                self._account = Bucket(float(values["requests_per_second"]))
            if "per_key_per_second" in values:
                self.per_key_per_second = float(values["per_key_per_second"])
                self._keys.clear()
            if "send_retry_after" in values:
                self.send_retry_after = bool(values["send_retry_after"])
            if "key_429_scope" in values:
                self.key_429_scope = _choice("key_429_scope", values["key_429_scope"],
                                             KEY_429_SCOPES)
            return {"requests_per_second": self._account.rate,
                    "per_key_per_second": self.per_key_per_second,
                    "send_retry_after": self.send_retry_after,
                    "key_429_scope": self.key_429_scope, **current_imports}

    def _settings(self, request: Request):
        body = request.json() or {}
        known = {"requests_per_second", "per_key_per_second", "send_retry_after",
                 "key_429_scope",
                 *IMPORT_SETTINGS}
        unknown = sorted(set(body) - known) if isinstance(body, dict) else ["(not an object)"]
        if unknown:
            raise self.problem(400, f"unknown setting {', '.join(unknown)}")
        try:
            return self.settings(**body)
        except (TypeError, ValueError) as exc:
            raise self.problem(400, str(exc)) from None

    def profile_state(self, key: str, keyspace: str = CRM_ID) -> dict[str, Any] | None:
        """A profile's attributes (default section) and ``modified_at``, or None."""
        with self.lock:
            p = self.audience.find(keyspace, key)
            if p is None:
                return None
            return {"key": key, "attributes": dict(p.attributes.get(self.section, {})),
                    "modified_at": self._modified.get(p.pid)}

    def _control_profile(self, request: Request):
        state = self.profile_state(unquote(request.params["key"]))
        if state is None:
            raise self.problem(404, "no such profile")
        return state

    def _control_profiles(self, request: Request):
        body = request.json() or {}
        return {"items": [self.profile_state(str(k)) for k in body.get("keys", [])]}

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

    def _media_type(self, request: Request, expected: str = "application/json") -> None:
        """415 (problem+json) unless the body is sent as ``expected`` (``apis.md`` 3.3: merge
        patches are ``application/merge-patch+json``; other bodies JSON)."""
        ctype = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != expected:
            raise self.problem(415, f"Content-Type must be {expected}")

    def _accepts_problem(self, request: Request) -> None:
        """406 when ``Accept`` excludes problem+json (``apis.md`` 3.3, v2 attributes)."""
        accept = (request.header("Accept") or "*/*").lower()
        ranges = {part.split(";")[0].strip() for part in accept.split(",")}
        if not ranges & {"application/problem+json", "application/*", "*/*"}:
            raise self.problem(406, "Accept must allow application/problem+json")

    def _required(self, body: dict[str, Any], *names: str) -> None:
        missing = [n for n in names if body.get(n) in (None, "")]
        if missing:
            raise self.problem(400, f"missing required field{'s' if len(missing) > 1 else ''} "
                                    f"{', '.join(missing)}")

    def _json_object(self, request: Request) -> dict[str, Any]:
        try:
            body = json.loads(request.body or b"null")
        except ValueError:
            raise self.problem(400, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise self.problem(400, "the body must be a JSON object")
        return body

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

    # -- profiles ----------------------------------------------------------------------------------

    def _known(self, section: str, names: Iterable[str]) -> None:
        attrs = self.sections[section]["attributes"]
        unknown = [n for n in names if n not in attrs]
        if unknown:
            raise self.problem(400, f"attribute {', '.join(unknown)} is not defined in "
                                    f"section {section}")

    def _patch_v2(self, request: Request):
        self._media_type(request, MERGE_PATCH)
        self._accepts_problem(request)
        p = request.params
        body = self._json_object(request)
        self._known(p["section"], body)
        self.audience.write(p["ks"], p["key"], p["section"], body, create=False)
        return 204, None

    def _patch_v1(self, request: Request):
        self._media_type(request, MERGE_PATCH)
        p = request.params
        body = self._json_object(request)
        by_version = {a["version_id"]: d for d, a in
                      self.sections[p["section"]]["attributes"].items()}
        unknown = [v for v in body if v not in by_version]
        if unknown:
            raise self.problem(400, f"unknown attribute version id {', '.join(unknown)}")
        changes = {by_version[v]: value for v, value in body.items()}
        _, created = self.audience.write(p["ks"], p["key"], p["section"], changes, create=True)
        return (201 if created else 200), {}

    def _delete_attribute(self, request: Request):
        p = request.params
        names = [d for d, a in self.sections[p["section"]]["attributes"].items()
                 if a["version_id"] == p["version"]]
        if not names:
            raise self.problem(404, f"attribute version {p['version']} not found")
        self.audience.write(p["ks"], p["key"], p["section"], {names[0]: None}, create=False)
        return 204, None

    def _post_consent(self, request: Request):
        self._media_type(request)
        p = request.params
        body = self._json_object(request)
        self._required(body, "topic_discriminator", "channel_discriminator", "type")
        topic, channel = body.get("topic_discriminator"), body.get("channel_discriminator")
        if body.get("type") not in WRITABLE_CONSENTS:
            raise self.problem(400, f"type must be one of {', '.join(WRITABLE_CONSENTS)}")
        if channel not in CHANNELS:
            raise self.problem(400, f"unknown channel_discriminator {channel!r}")
        if topic not in self.sections[p["section"]]["topics"]:
            raise self.problem(404, f"topic {topic!r} not found in section {p['section']}")
        profile = self.audience.get(p["ks"], p["key"])
        status = self.audience.set_consent(profile, p["section"], topic, channel, body)
        if status == 409:
            raise self.problem(409, f"consent {body['type']} is already set for {topic} on "
                                    f"{channel}")
        return status, None

    def _get_consents(self, request: Request):
        p = request.params
        profile = self.audience.get(p["ks"], p["key"])
        wanted = set(request.query.get("consent_types", []))
        items = [dict(c) for c in profile.consents.get(p["section"], {}).values()
                 if not wanted or c["type"] in wanted]
        return {"items": items}

    def _patch_tags(self, request: Request):
        self._media_type(request, MERGE_PATCH)
        p = request.params
        body = self._json_object(request)
        if not all(isinstance(v, bool) for v in body.values()):
            raise self.problem(400, "tag values must be true or false")
        profile = self.audience.get(p["ks"], p["key"])
        known = self.sections[p["section"]]["tags"]
        for tag in body:  # GAP: tags are defined on first use here
            known.setdefault(tag, {"discriminator": tag, "name": tag.rsplit(".", 1)[-1]})
        profile.tags.setdefault(p["section"], {}).update(body)
        return 204, None

    def _delete_profile(self, request: Request):
        p = request.params
        if not self.audience.delete(p["ks"], p["key"]):
            raise self.problem(404, f"no profile with key {p['key']!r} in keyspace {p['ks']}")
        return 204, None  # GAP: the real status code is not documented

    def _merge(self, request: Request):
        self._media_type(request)
        body = self._json_object(request)
        profiles = body.get("profiles")
        try:
            (a, b) = [(str(x["keyspace_discriminator"]), str(x["profile_key"]))
                      for x in profiles]  # type: ignore[union-attr]
        except (TypeError, KeyError, ValueError):
            raise self.problem(400, "profiles must be two {keyspace_discriminator, "
                                    "profile_key} objects") from None
        for ks, _ in (a, b):
            if ks not in self.keyspaces:
                raise self.problem(400, f"unknown keyspace {ks}")
        self.audience.merge(a, b, self.section)
        return 204, None
