"""Linked users of one ``ms365`` connection and their tokens (apis.md 5).

- Tokens live in an MSAL :class:`msal.SerializableTokenCache` persisted to
  ``{state_dir}/ms365-{connection}.tokens.json`` (mode 0600, written atomically whenever MSAL
  changed it) and are refreshed silently (``acquire_token_silent``, which uses the cached
  refresh token). Nothing of a token ever reaches a log or an error message.
- The users and their state go to ``{state_dir}/ms365-{connection}.users.json``: ``linked``,
  or ``consent_required`` with the reason (consent revoked or expired: that user is skipped,
  the others go on, until ``syncd ms365 authorize`` links it again).
- Flows (option ``flow``): ``device_code`` (headless), ``auth_code`` (a redirect URL), or
  ``application`` (client credentials; only users in ``allowed_users``).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import msal

from syncd.plugin import AuthError
from syncd_ms365.http_client import PinnedSession

GRAPH_DEFAULT = "https://graph.microsoft.com/.default"


class ConsentRequired(AuthError):
    """A user's consent is missing, expired or revoked: link it again."""

    def __init__(self, user: str, reason: str):
        self.user = user
        self.reason = reason
        super().__init__(f"{user}: {reason} (fix: syncd ms365 authorize CONNECTION --user "
                         f"{user})", status=401)


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    reveal = getattr(value, "reveal", None)
    return reveal() if callable(reveal) else str(value)


def write_private(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by this user alone (0600)."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _reason(result: Mapping[str, Any] | None) -> str:
    if not result:
        return "no cached token for this user"
    text = str(result.get("error_description") or "").splitlines()
    return f"{result.get('error', 'error')}: {text[0] if text else ''}".strip(": ")


class Accounts:
    def __init__(self, name: str, options: Mapping[str, Any], state_dir: str | None):
        self.name = name
        self.options = options
        self.flow = options.get("flow", "device_code")
        self.scopes = list(options.get("scopes") or ["Contacts.ReadWrite"])
        directory = state_dir or tempfile.gettempdir()
        self.cache_path = os.path.join(directory, f"ms365-{name}.tokens.json")
        self.users_path = os.path.join(directory, f"ms365-{name}.users.json")
        self.lock = threading.RLock()
        self.cache = msal.SerializableTokenCache()
        self.users: dict[str, dict[str, Any]] = {}
        self._loaded: tuple[float, float] = (-1.0, -1.0)
        self._app: msal.ClientApplication | None = None
        self.reload()

    @staticmethod
    def _mtime(path: str) -> float:
        try:
            return os.stat(path).st_mtime_ns / 1e9
        except OSError:
            return 0.0

    def reload(self) -> None:
        """Read the token cache and the users again if a ``syncd ms365 authorize`` (another
        process) changed them since."""
        with self.lock:
            stamps = (self._mtime(self.cache_path), self._mtime(self.users_path))
            if stamps == self._loaded:
                return
            if stamps[0] != self._loaded[0] and stamps[0]:
                with open(self.cache_path) as fh:
                    self.cache.deserialize(fh.read())
            if stamps[1] != self._loaded[1] and stamps[1]:
                with open(self.users_path) as fh:
                    self.users = json.load(fh)
            self._loaded = stamps

    # -- MSAL ------------------------------------------------------------------------------

    @property
    def app(self) -> msal.ClientApplication:
        if self._app is None:
            common = {"authority": self.options["authority"], "token_cache": self.cache,
                          "http_client": PinnedSession(self.options.get("ca_bundle") or None,
                                                    float(self.options.get("timeout", 30))),
                          "instance_discovery": self._instance_discovery()}
            secret = _secret(self.options.get("client_secret"))
            if secret is not None:
                self._app = msal.ConfidentialClientApplication(
                    self.options["client_id"], client_credential=secret, **common)
            else:
                self._app = msal.PublicClientApplication(self.options["client_id"], **common)
        return self._app

    def _instance_discovery(self) -> bool | None:
        # Microsoft's own hosts need no discovery; any other authority (a sovereign cloud
        # named explicitly, the emulator) must not be sent to login.microsoftonline.com.
        from urllib.parse import urlparse
        host = urlparse(self.options["authority"]).hostname or ""
        return None if host.endswith("login.microsoftonline.com") else False

    def _save(self) -> None:
        if self.cache.has_state_changed:
            write_private(self.cache_path, self.cache.serialize())
            self.cache.has_state_changed = False
            self._loaded = (self._mtime(self.cache_path), self._loaded[1])

    def _save_users(self) -> None:
        write_private(self.users_path, json.dumps(self.users, indent=1, sort_keys=True))
        self._loaded = (self._loaded[0], self._mtime(self.users_path))

    def mark(self, user: str, state: str, reason: str | None = None) -> None:
        with self.lock:
            entry = self.users.setdefault(user.lower(), {"linked_at": time.time()})
            if entry.get("state") == state and entry.get("reason") == reason:
                return
            entry.update(state=state, reason=reason, since=time.time())
            self._save_users()

    # -- linking ---------------------------------------------------------------------------

    def _linked(self, user: str, result: Mapping[str, Any]) -> str:
        if "access_token" not in result:
            raise ConsentRequired(user, _reason(result))
        signed_in = str((result.get("id_token_claims") or {}).get("preferred_username", ""))
        if signed_in and signed_in.lower() != user.lower():
            raise AuthError(f"signed in as {signed_in}, not {user}: sign in with {user}'s "
                            "account")
        self._save()
        self.mark(user, "linked")
        return user.lower()

    def authorize_device(self, user: str, announce: Callable[[str], None]) -> str:
        with self.lock:
            flow = self.app.initiate_device_flow(scopes=self.scopes)
        if "user_code" not in flow:
            raise AuthError(f"device code refused: {_reason(flow)}")
        announce(flow["message"])
        result = self.app.acquire_token_by_device_flow(flow)
        with self.lock:
            return self._linked(user, result)

    def auth_code_flow(self, user: str) -> dict[str, Any]:
        redirect = self.options.get("redirect_uri") or ""
        if not redirect:
            raise AuthError("flow = \"auth_code\" needs redirect_uri in the connection")
        with self.lock:
            return self.app.initiate_auth_code_flow(self.scopes, redirect_uri=redirect,
                                                    login_hint=user)

    def complete_auth_code(self, user: str, flow: dict[str, Any],
                           params: Mapping[str, str]) -> str:
        with self.lock:
            result = self.app.acquire_token_by_auth_code_flow(flow, dict(params))
            return self._linked(user, result)

    def authorize_application(self, user: str) -> str:
        allowed = {u.lower() for u in self.options.get("allowed_users") or ()}
        if user.lower() not in allowed:
            raise AuthError(f"{user} is not in allowed_users of connection {self.name}")
        self.app_token()
        self.mark(user, "linked")
        return user.lower()

    def unlink(self, user: str) -> None:
        with self.lock:
            for account in self.app.get_accounts(username=user):
                self.app.remove_account(account)
            self._save()
            self.users.pop(user.lower(), None)
            self._save_users()

    # -- tokens ----------------------------------------------------------------------------

    def app_token(self) -> str:
        with self.lock:
            result = self.app.acquire_token_for_client([GRAPH_DEFAULT])
            self._save()
        if "access_token" not in result:
            raise AuthError(f"application token refused: {_reason(result)}", status=401)
        return result["access_token"]

    def token(self, user: str, force_refresh: bool = False) -> str:
        """An access token for ``user``'s mailbox, refreshed silently; raises
        :class:`ConsentRequired` (and marks the user) when that is not possible."""
        user = user.lower()
        self.reload()
        if self.flow == "application":
            allowed = {u.lower() for u in self.options.get("allowed_users") or ()}
            if user not in allowed:
                self.mark(user, "consent_required", "not in allowed_users")
                raise ConsentRequired(user, "not in allowed_users")
            return self.app_token()
        with self.lock:
            accounts = self.app.get_accounts(username=user)
            if not accounts:
                self.mark(user, "consent_required", "no cached account for this user")
                raise ConsentRequired(user, "no cached account for this user")
            result = self.app.acquire_token_silent_with_error(
                self.scopes, account=accounts[0], force_refresh=force_refresh)
            self._save()
        if not result or "access_token" not in result:
            reason = _reason(result)
            self.mark(user, "consent_required", reason)
            raise ConsentRequired(user, reason)
        if self.users.get(user, {}).get("state") != "linked":
            self.mark(user, "linked")
        return result["access_token"]

    def linked_users(self) -> list[str]:
        return sorted(u for u, e in self.users.items() if e.get("state") == "linked")

    def summary(self) -> dict[str, dict[str, Any]]:
        return {u: {"state": e.get("state"), "reason": e.get("reason"),
                    "since": e.get("since")} for u, e in sorted(self.users.items())}
