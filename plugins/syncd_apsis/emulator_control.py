"""The APSIS emulator's control API for tests and benchmarks (a mixin of
:class:`~syncd_apsis.emulator.ApsisEmulator`): ``POST /_emulator/settings`` changes the
budgets and switches at run time; ``GET /_emulator/profile/{crm_id}`` and ``POST
/_emulator/profiles`` read profiles without touching the budgets, the faults or the request
counts. The settings are listed in :mod:`syncd_apsis.emulator`'s docstring."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from syncd.plugin import Request
from syncd_apsis.audience import CRM_ID
from syncd_apsis.emulator_host import ApsisHost
from syncd_apsis.emulator_imports import IMPORT_SETTINGS
from syncd_apsis.emulator_limits import Bucket
from syncd_apsis.emulator_reads import PROFILE_READS, TAG_READS

#: GAP switch: what a 429 of the per-profile-key limit holds (the whole account, or the key).
KEY_429_SCOPES = ("account", "key")


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}")
    return str(value)


class ControlApi(ApsisHost):
    """Mixed into :class:`~syncd_apsis.emulator.ApsisEmulator` (budgets, locks, audience)."""

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
            if "profile_reads" in values:
                self.profile_reads = _choice("profile_reads", values["profile_reads"],
                                             PROFILE_READS)
            if "tag_reads" in values:
                self.tag_reads = _choice("tag_reads", values["tag_reads"], TAG_READS)
            return {"requests_per_second": self._account.rate,
                    "per_key_per_second": self.per_key_per_second,
                    "send_retry_after": self.send_retry_after,
                    "key_429_scope": self.key_429_scope, "profile_reads": self.profile_reads,
                    "tag_reads": self.tag_reads, **current_imports}

    def _settings(self, request: Request):
        body = request.json() or {}
        known = {"requests_per_second", "per_key_per_second", "send_retry_after",
                 "key_429_scope", "profile_reads", "tag_reads",
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
