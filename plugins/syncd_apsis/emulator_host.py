"""What the parts of the APSIS One emulator take from each other, declared once.

:class:`~syncd_apsis.emulator.ApsisEmulator` is its mixins (profiles, definitions, imports,
e-mail and SMS exports, control) plus :class:`syncd.plugin.Emulator`. Each mixin derives from
:class:`ApsisHost`, which names, with their types, the state ``ApsisEmulator.__init__`` sets
and the methods one part calls on another, so that the type checker checks every part on its
own. For the type checker the host is an :class:`~syncd.plugin.Emulator` (lock, url, faults,
Retry-After bookkeeping); at run time it is a plain class with no members: the emulator's
behaviour comes from the mixins and the real base class only.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from syncd.plugin import Emulator, HTTPError, Request
from syncd_apsis.audience import Audience
from syncd_apsis.emulator_limits import Bucket

if TYPE_CHECKING:
    _Base = Emulator
else:
    _Base = object


class ApsisHost(_Base):
    # -- set by ApsisEmulator.__init__ ----------------------------------------------------------
    section: str
    sections: dict[str, dict[str, Any]]
    keyspaces: dict[str, str]
    audience: Audience
    send_retry_after: bool
    #: per-profile-key budgets and their lock
    _keys: dict[tuple[str, str], Bucket]
    _budget_lock: threading.Lock
    #: profile id -> time.time() of its last successful write through the API
    _modified: dict[int, float]

    # -- set by EmailEvents._init_email_events (emulator_events.py) -----------------------------
    email_events: list[dict[str, Any]]
    reports: dict[str, dict[str, Any]]
    export_delay: float
    _events_rng: random.Random

    if TYPE_CHECKING:
        # ApsisEmulator (emulator.py)
        def problem(self, status: int, detail: str) -> HTTPError: ...

        def _api(self, handler: Callable[[Request], Any], keyed: bool = False
                 ) -> Callable[[Request], Any]: ...

        # ProfilesApi (emulator_profiles.py)
        @property
        def channel_discriminators(self) -> tuple[str, str]: ...

        def _media_type(self, request: Request, expected: str = "application/json") -> None: ...

        def _json_object(self, request: Request) -> dict[str, Any]: ...

        # ImportsApi (emulator_imports.py)
        def configure_imports(self, **values: Any) -> dict[str, Any]: ...

        # EmailEvents (emulator_events.py)
        def _export_gate(self, request: Request) -> None: ...

        # ResponseExports (emulator_responses.py)
        def completed_answer(self, report: dict[str, Any], base: str
                             ) -> tuple[int, dict[str, Any], dict[str, str]]: ...

        def check_download(self, request: Request, report: dict[str, Any]) -> None: ...
