"""The APSIS emulator's profile reads (a mixin of :class:`~syncd_apsis.emulator.ApsisEmulator`)
and the control endpoint that changes a profile as a person in APSIS One would.

Reading one profile's attributes and tags is not in the public material (``apis.md`` 3.3,
3.5: [GAP]); the consents read is documented (3.4, served by
:mod:`syncd_apsis.emulator_profiles`). Switches, each covered by connector tests per setting:

- ``profile_reads`` (settable) ``"v2"`` (default): ``GET /v2/audience/keyspaces/{ks}/profiles/
  {key}/sections/{section}/attributes`` answers the section's attributes as a map by
  discriminator (the shape of the v2 PATCH body); ``"v1"``: only the path without ``/v2``
  answers, ``{"items": [{"version_id", "value"}]}`` (the v1 PATCH's naming); ``"none"``:
  neither path answers (404 problem).
- ``tag_reads`` (settable) ``"map"`` (default): ``GET /audience/keyspaces/{ks}/profiles/{key}/
  sections/{section}/tags`` answers ``{tag: bool}``; ``"items"``: ``{"items":
  [{"discriminator", "value"}]}``; ``"none"``: 404 problem.

Both answer only what is set: a cleared attribute is absent. A missing profile is a 404
problem (as every keyed endpoint). Reads spend the account and per-key budgets like any call.

Control: ``PATCH /_emulator/profile/{crm_id}`` with any of ``attributes`` (``{discriminator:
value}``, ``null`` clears), ``consents`` (``{"topic|email": "opt-out"}``, channel ``email`` or
``sms``) and ``tags`` (``{tag: bool}``) changes a profile outside the API (no budget, no
request counted as an API write), as a person editing it in APSIS One would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from syncd.plugin import HTTPError, Request, Router
from syncd_apsis.audience import CRM_ID, Audience

PROFILE_READS = ("v2", "v1", "none")
TAG_READS = ("map", "items", "none")
PROFILE = "/audience/keyspaces/{ks}/profiles/{key}/sections/{section}"


class ReadsApi:
    """Mixed into :class:`~syncd_apsis.emulator.ApsisEmulator`."""

    audience: Audience
    sections: dict[str, dict[str, Any]]
    section: str
    lock: Any
    profile_reads: str = "v2"
    tag_reads: str = "map"
    problem: Callable[[int, str], HTTPError]
    _api: Callable[..., Any]
    channel_discriminators: tuple[str, str]

    def setup_read_routes(self, router: Router) -> None:
        router.add("GET", f"/v2{PROFILE}/attributes", self._api(self._get_attributes_v2, True))
        router.add("GET", f"{PROFILE}/attributes", self._api(self._get_attributes_v1, True))
        router.add("GET", f"{PROFILE}/tags", self._api(self._get_tags, True))
        router.add("PATCH", "/_emulator/profile/{key}", self._control_change)

    def _attributes(self, request: Request) -> dict[str, Any]:
        p = request.params
        profile = self.audience.get(p["ks"], p["key"])
        return {k: v for k, v in profile.attributes.get(p["section"], {}).items()
                if v is not None}

    def _get_attributes_v2(self, request: Request) -> Any:
        if self.profile_reads != "v2":
            raise self.problem(404, "no such endpoint")
        return self._attributes(request)

    def _get_attributes_v1(self, request: Request) -> Any:
        if self.profile_reads != "v1":
            raise self.problem(404, "no such endpoint")
        defined = self.sections[request.params["section"]]["attributes"]
        return {"items": [{"version_id": defined[name]["version_id"], "value": value}
                          for name, value in self._attributes(request).items()
                          if name in defined]}

    def _get_tags(self, request: Request) -> Any:
        if self.tag_reads == "none":
            raise self.problem(404, "no such endpoint")
        p = request.params
        tags = dict(self.audience.get(p["ks"], p["key"]).tags.get(p["section"], {}))
        if self.tag_reads == "items":
            return {"items": [{"discriminator": t, "value": on} for t, on in tags.items()]}
        return tags

    # -- control -----------------------------------------------------------------------------

    def change_profile(self, key: str, *, attributes: dict[str, Any] | None = None,
                       consents: dict[str, str] | None = None,
                       tags: dict[str, bool] | None = None) -> None:
        """Change the profile keyed ``key`` (crm-id) as a person in APSIS One would."""
        channels = dict(zip(("email", "sms"), self.channel_discriminators, strict=True))
        with self.lock:
            profile = self.audience.get(CRM_ID, key)
            if attributes:
                self.audience.write(CRM_ID, key, self.section, attributes, create=False)
            for name, kind in (consents or {}).items():
                topic, channel = name.rsplit("|", 1)
                self.audience.set_consent(profile, self.section, topic, channels[channel],
                                          {"type": kind, "source": "APSIS One"})
            if tags:
                profile.tags.setdefault(self.section, {}).update(tags)

    def _control_change(self, request: Request) -> Any:
        body = request.json() or {}
        if not isinstance(body, dict) or set(body) - {"attributes", "consents", "tags"}:
            raise self.problem(400, "give attributes, consents and/or tags")
        try:
            self.change_profile(unquote(request.params["key"]), **body)
        except (KeyError, ValueError, TypeError) as exc:
            raise self.problem(400, f"cannot change the profile: {exc}") from None
        except Exception as exc:  # NotFound
            raise self.problem(404, str(exc)) from None
        return 204, None
