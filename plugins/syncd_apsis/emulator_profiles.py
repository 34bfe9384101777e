"""The APSIS emulator's profile endpoints (``apis.md`` 3.3-3.5, 3.7), as a mixin of
:class:`~syncd_apsis.emulator.ApsisEmulator`: v2 merge-patch attributes (no implicit create),
v1 PATCH by version id (creates), DELETE attribute by version id, consent 2.0 POST/GET, tags
PATCH, DELETE profile, merges. Strict where the docs speak: merge-patch bodies must be sent
as ``application/merge-patch+json`` and JSON bodies as ``application/json`` (415), v2
attributes need an ``Accept`` that allows problem+json (406), required fields (400).

Switch (a GAP/INFER: the exact strings are not documented, ``apis.md`` 3.4): ``channels``,
the channel discriminators the account knows: ``"com.apsis1"`` (default:
``com.apsis1.channels.email`` / ``.sms``) or ``"short"`` (``email`` / ``sms``); a consent to
another channel is a 400.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from syncd.plugin import Request
from syncd_apsis.emulator_host import ApsisHost

MERGE_PATCH = "application/merge-patch+json"
WRITABLE_CONSENTS = ("opt-in", "opt-out")
#: The ``channels`` switch: name -> (e-mail, SMS) channel discriminators.
CHANNEL_SETS = {"com.apsis1": ("com.apsis1.channels.email", "com.apsis1.channels.sms"),
                "short": ("email", "sms")}


class ProfilesApi(ApsisHost):
    """Mixed into :class:`~syncd_apsis.emulator.ApsisEmulator` (``audience``, ``sections``,
    ``keyspaces``, ``section``, ``problem`` are its)."""

    channels: str = "com.apsis1"

    @property
    def channel_discriminators(self) -> tuple[str, str]:
        """The (e-mail, SMS) channel discriminators of the ``channels`` switch."""
        return CHANNEL_SETS[self.channels]

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
        topic, channel = body["topic_discriminator"], body["channel_discriminator"]
        if body.get("type") not in WRITABLE_CONSENTS:
            raise self.problem(400, f"type must be one of {', '.join(WRITABLE_CONSENTS)}")
        if channel not in self.channel_discriminators:
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
        try:
            (a, b) = [(str(x["keyspace_discriminator"]), str(x["profile_key"]))
                      for x in body["profiles"]]
        except (TypeError, KeyError, ValueError):
            raise self.problem(400, "profiles must be two {keyspace_discriminator, "
                                    "profile_key} objects") from None
        for ks, _ in (a, b):
            if ks not in self.keyspaces:
                raise self.problem(400, f"unknown keyspace {ks}")
        self.audience.merge(a, b, self.section)
        return 204, None
