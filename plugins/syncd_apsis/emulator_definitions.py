"""The APSIS emulator's consent definitions beyond the v2 topics (``apis.md`` 3.2): consent
1.0 lists, ``GET /audience/sections/{section}/consent-lists`` and
``GET /audience/sections/{section}/consent-lists/{list}/topics``.

The emulator keeps topics per section; for consent 1.0 they are served as one consent list
per section (:data:`CONSENT_LIST`), holding every topic of the section. Response shapes are
GAPs: ``{"items": [{"discriminator", "name"}]}`` like the other definitions.

Switch (a GAP: whether an account answers consent 2.0 depends on its migration, ``apis.md``
3.4): ``consent_v2`` (default True). False: the account is not migrated, ``GET
/v2/audience/sections/{section}/topics`` answers 404, the consent lists still answer.
"""

from __future__ import annotations

from typing import Any

from syncd.plugin import Request, Router
from syncd_apsis.emulator_host import ApsisHost

CONSENT_LIST = "com.apsis1.consent-lists.default"


class DefinitionsApi(ApsisHost):
    """Mixed into :class:`~syncd_apsis.emulator.ApsisEmulator` (which provides ``sections``,
    ``problem`` and ``_api``)."""

    consent_v2: bool = True

    def setup_definition_routes(self, router: Router) -> None:
        base = "/audience/sections/{section}/consent-lists"
        router.add("GET", base, self._api(self._consent_lists))
        router.add("GET", base + "/{list}/topics",
                   self._api(self._consent_list_topics))

    def _v2_topics(self, request: Request) -> dict[str, Any]:
        if not self.consent_v2:
            raise self.problem(404, "consent 2.0 is not enabled for this account")
        return self._items(request, "topics")

    def _items(self, request: Request, what: str) -> dict[str, Any]:
        return {"items": [dict(v) for v in self.sections[request.params["section"]][what]
                          .values()]}

    def _consent_lists(self, request: Request) -> dict[str, Any]:
        return {"items": [{"discriminator": CONSENT_LIST, "name": "Default"}]}

    def _consent_list_topics(self, request: Request) -> dict[str, Any]:
        if request.params["list"] != CONSENT_LIST:
            raise self.problem(404, f"consent list {request.params['list']} not found")
        return {"items": [{"discriminator": t["discriminator"], "name": t["name"]}
                          for t in self.sections[request.params["section"]]["topics"].values()]}
