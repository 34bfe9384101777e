"""An emulator of the Microsoft identity platform for MSAL (apis.md 5.3, 5.5), over TLS.

MSAL insists on an ``https://`` authority, so this emulator generates a CA and a server
certificate at start (:mod:`.tls`) and serves ``https://127.0.0.1:PORT/{tenant}``; the CA's
file (:attr:`IdentityEmulator.ca_bundle`) is what a connection's ``ca_bundle`` names. Tests
and the sandbox run the real MSAL code against it (``instance_discovery=False``).

Endpoints (``{tenant}`` is :attr:`tenant_id` or any name in :attr:`tenant_names`):

- ``GET /{tenant}/v2.0/.well-known/openid-configuration``: ``authorization_endpoint``,
  ``token_endpoint``, ``device_authorization_endpoint``, ``issuer`` (apis.md 5.3 #3);
- ``POST /{tenant}/oauth2/v2.0/devicecode`` (form: ``client_id``, ``scope``);
- ``GET /{tenant}/oauth2/v2.0/authorize``: auto-consent, 302 to ``redirect_uri`` with
  ``code`` and ``state`` (the user signed in is ``login_hint`` or :attr:`login_as`);
- ``POST /{tenant}/oauth2/v2.0/token`` (form-encoded only, 415 otherwise [DOC OAuth]):
  ``client_credentials`` (confidential clients, scope ``…/.default``), ``authorization_code``
  (redirect URI and PKCE S256 checked), ``refresh_token``, and
  ``urn:ietf:params:oauth:grant-type:device_code`` answering ``authorization_pending`` until
  the user approved (:meth:`approve_device`), ``expired_token`` after ``expires_in``.
  Delegated answers carry ``refresh_token``, ``client_info`` and an unsigned id_token
  (``aud``, ``iss``, ``exp``, ``nonce``, ``oid``, ``preferred_username``), so MSAL caches an
  account (apis.md 5.2). Errors are ``400 {"error", "error_description"}``.

Switches where apis.md is silent (constructor arguments or ``POST /_emulator/settings``):

- ``device_interval`` (seconds MSAL waits between device-code polls; 5 as Azure answers,
  tests use 0) and ``pending_polls`` (how many polls of an approved code still answer
  ``authorization_pending``, to prove the client polls on);
- ``token_lifetime`` (access tokens, seconds);
- ``login_as``: the user who signs in at ``/authorize`` when no ``login_hint`` names one,
  and who approves every device code at its first poll (the sandbox's and the CLI tests'
  stand-in for a person entering the code in a browser).

Control (tests and ``/_emulator/``): :meth:`add_user`, :meth:`register_client`,
:meth:`approve_device` (``POST /_emulator/approve`` ``{"user_code", "user"}``),
:meth:`revoke` (``POST /_emulator/revoke`` ``{"user"}``: the user's consent is withdrawn, its
refresh tokens answer ``invalid_grant`` and its access tokens stop working),
``POST /_emulator/expire-tokens``. The Graph emulator asks :meth:`principal` who a bearer
token stands for.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from syncd.plugin import Emulator, HTTPError, Request, Router, TokenIssuer
from syncd_ms365.tls import TLSServerThread, make_certificates

GRAPH_DEFAULT = "https://graph.microsoft.com/.default"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Client:
    client_id: str
    secret: str | None = None  # None: a public client (device code, auth code with PKCE)
    redirect_uris: tuple[str, ...] = ()
    app_roles: set[str] = field(default_factory=set)  # application permissions granted


@dataclass
class Principal:
    """Whom an access token stands for."""
    client_id: str
    user: str | None  # the user's e-mail (delegated); None: the application itself
    oid: str | None
    roles: frozenset[str] = frozenset()


class IdentityEmulator(Emulator):
    kind = "identity"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, seed: int | None = None,
                 tenant_id: str | None = None, device_interval: int = 5,
                 pending_polls: int = 0, token_lifetime: float = 3600.0,
                 login_as: str | None = None, cert_dir: str | None = None):
        self.tenant_id = tenant_id or str(uuid.UUID(int=0x5eed))
        self.tenant_names = {self.tenant_id, "organizations", "common"}
        self.device_interval = device_interval
        self.pending_polls = pending_polls
        self.login_as = login_as
        self.tokens = TokenIssuer(token_lifetime, prefix="eyJ0eXAi")
        self.users: dict[str, str] = {}  # e-mail (lower) -> oid
        self.clients: dict[str, Client] = {}
        self.revoked: set[str] = set()
        self._principals: dict[str, Principal] = {}
        self._refresh: dict[str, tuple[str, str, str]] = {}  # rt -> (client, user, scope)
        self._codes: dict[str, dict[str, Any]] = {}
        self._devices: dict[str, dict[str, Any]] = {}  # device_code -> state
        self._ilock = threading.Lock()
        self._cert_dir = cert_dir
        self.ca_bundle = ""
        super().__init__(host, port, seed=seed)

    # -- control ---------------------------------------------------------------------------

    def add_user(self, email: str) -> str:
        oid = str(uuid.uuid5(uuid.NAMESPACE_URL, "user:" + email.lower()))
        self.users[email.lower()] = oid
        self.revoked.discard(email.lower())
        return oid

    def register_client(self, client_id: str, secret: str | None = None,
                        redirect_uris: tuple[str, ...] = (),
                        app_roles: set[str] | None = None) -> Client:
        client = Client(client_id, secret, tuple(redirect_uris), set(app_roles or ()))
        self.clients[client_id] = client
        return client

    def approve_device(self, user_code: str, user: str) -> None:
        with self._ilock:
            for state in self._devices.values():
                if state["user_code"] == user_code:
                    state["user"] = user.lower()
                    return
        raise KeyError(user_code)

    def revoke(self, user: str) -> None:
        """The user withdrew consent (or an admin revoked the sessions)."""
        user = user.lower()
        with self._ilock:
            self.revoked.add(user)
            for rt in [rt for rt, v in self._refresh.items() if v[1] == user]:
                del self._refresh[rt]
            for tok in [t for t, p in self._principals.items() if p.user == user]:
                del self._principals[tok]

    def principal(self, token: str | None) -> Principal | None:
        """Whom a valid, unexpired bearer token stands for; None for any other token."""
        if not self.tokens.valid(token):
            return None
        with self._ilock:
            return self._principals.get(token or "")

    # -- TLS life cycle --------------------------------------------------------------------

    def start(self) -> IdentityEmulator:
        directory = self._cert_dir or tempfile.mkdtemp(prefix="syncd-identity-")
        ca, cert, key = make_certificates(directory, self.host)
        self.ca_bundle = ca
        server = TLSServerThread(self, self.host, self.port, cert, key, name="emulator-identity")
        # TLSServerThread has ServerThread's interface (port, start, stop) without its base
        # class (it serves with the stdlib over TLS, not waitress)
        self._server = server  # type: ignore[assignment]
        self.port = server.port
        server.start()
        return self

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def authority(self) -> str:
        return f"{self.url}/{self.tenant_id}"

    # -- routes ----------------------------------------------------------------------------

    def setup_routes(self, router: Router) -> None:
        router.add("GET", "/{tenant}/v2.0/.well-known/openid-configuration", self._openid)
        router.add("POST", "/{tenant}/oauth2/v2.0/token", self._token)
        router.add("POST", "/{tenant}/oauth2/v2.0/devicecode", self._devicecode)
        router.add("GET", "/{tenant}/oauth2/v2.0/authorize", self._authorize)
        router.add("POST", "/_emulator/settings", self._settings)
        router.add("POST", "/_emulator/approve", self._approve)
        router.add("POST", "/_emulator/revoke", self._revoke)
        router.add("POST", "/_emulator/expire-tokens", self._expire_tokens)

    def _approve(self, request: Request) -> dict:
        body = request.json()
        self.approve_device(body["user_code"], body["user"])
        return {}

    def _revoke(self, request: Request) -> dict:
        self.revoke(request.json()["user"])
        return {}

    def _expire_tokens(self, request: Request) -> dict:
        self.tokens.expire_all()
        return {}

    def error_body(self, status: int, message: str) -> tuple[Any, str]:
        return {"error": "server_error" if status >= 500 else "invalid_request",
                "error_description": message}, "application/json"

    def _settings(self, request: Request) -> dict:
        body = request.json() or {}
        for key in ("device_interval", "pending_polls", "login_as"):
            if key in body:
                setattr(self, key, body[key])
        if "token_lifetime" in body:
            self.tokens.lifetime = float(body["token_lifetime"])
        return {}

    def _tenant(self, request: Request) -> str:
        tenant = request.params["tenant"]
        if tenant not in self.tenant_names:
            raise HTTPError(400, {"error": "invalid_tenant", "error_description":
                                  f"AADSTS90002: Tenant '{tenant}' not found."})
        return tenant

    def _openid(self, request: Request) -> dict:
        base = f"{self.url}/{self._tenant(request)}"
        return {"authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "issuer": f"{self.url}/{self.tenant_id}/v2.0",
                "response_types_supported": ["code", "id_token", "code id_token"],
                "grant_types_supported": ["authorization_code", "refresh_token",
                                          "client_credentials", DEVICE_GRANT]}

    @staticmethod
    def _fail(error: str, description: str, status: int = 400, **extra: Any) -> HTTPError:
        return HTTPError(status, {"error": error, "error_description": description, **extra})

    def _form(self, request: Request) -> dict[str, str]:
        ctype = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise HTTPError(415, {"error": "invalid_request", "error_description":
                                  "AADSTS900561: the token endpoint takes a form body"})
        return request.form()

    def _client(self, form: dict[str, str], confidential: bool = False) -> Client:
        client = self.clients.get(form.get("client_id", ""))
        if client is None:
            raise self._fail("unauthorized_client", "AADSTS700016: Application not found.")
        if client.secret is not None or confidential:
            if client.secret is None or not secrets.compare_digest(
                    form.get("client_secret", ""), client.secret):
                raise self._fail("invalid_client", "AADSTS7000215: Invalid client secret.",
                                 401)
        return client

    def _devicecode(self, request: Request) -> dict:
        self._tenant(request)
        form = self._form(request)
        self._client(form)
        device_code, user_code = secrets.token_urlsafe(24), secrets.token_hex(4).upper()
        with self._ilock:
            self._devices[device_code] = {
                "client": form["client_id"], "scope": form.get("scope", ""),
                "user_code": user_code, "user": None, "polls": 0,
                "expires": time.time() + 900}
        verify = f"{self.url}/devicelogin"
        return {"device_code": device_code, "user_code": user_code,
                "verification_uri": verify, "expires_in": 900,
                "interval": self.device_interval,
                "message": f"To sign in, open {verify} and enter the code {user_code}."}

    def _authorize(self, request: Request):
        self._tenant(request)
        client = self.clients.get(request.arg("client_id") or "")
        redirect = request.arg("redirect_uri") or ""
        if client is None or redirect not in client.redirect_uris:
            raise self._fail("invalid_request", "AADSTS50011: redirect URI mismatch.")
        user = (request.arg("login_hint") or self.login_as or "").lower()
        if user not in self.users:
            raise self._fail("invalid_request", "AADSTS50034: user account not found.")
        code = secrets.token_urlsafe(24)
        with self._ilock:
            self._codes[code] = {"client": client.client_id, "user": user,
                                 "redirect_uri": redirect, "scope": request.arg("scope", ""),
                                 "challenge": request.arg("code_challenge"),
                                 "nonce": request.arg("nonce"), "expires": time.time() + 600}
            self.revoked.discard(user)  # signing in again consents again
        query = urlencode({"code": code, "state": request.arg("state") or ""})
        return 302, None, {"Location": f"{redirect}?{query}"}

    def _token(self, request: Request) -> dict:
        self._tenant(request)
        form = self._form(request)
        grant = form.get("grant_type", "")
        if grant == "client_credentials":
            client = self._client(form, confidential=True)
            if form.get("scope", "").split() != [GRAPH_DEFAULT]:
                raise self._fail("invalid_scope", "AADSTS1002012: client credentials need "
                                 "the /.default scope.")
            token, lifetime = self.tokens.issue()
            with self._ilock:
                self._principals[token] = Principal(client.client_id, None, None,
                                                    frozenset(client.app_roles))
            return {"token_type": "Bearer", "expires_in": int(lifetime),
                    "ext_expires_in": int(lifetime), "access_token": token}
        client = self._client(form)
        if grant == "authorization_code":
            with self._ilock:
                code = self._codes.pop(form.get("code", ""), None)
            if code is None or code["expires"] < time.time() or code["client"] != \
                    client.client_id:
                raise self._fail("invalid_grant", "AADSTS70008: the code is invalid or "
                                 "expired.")
            if form.get("redirect_uri") != code["redirect_uri"]:
                raise self._fail("invalid_grant", "AADSTS50011: redirect URI mismatch.")
            if code["challenge"]:
                digest = _b64(hashlib.sha256(form.get("code_verifier", "").encode()).digest())
                if digest != code["challenge"]:
                    raise self._fail("invalid_grant", "AADSTS501481: code_verifier does not "
                                     "match the code_challenge.")
            return self._delegated(client, code["user"], form.get("scope") or code["scope"],
                                   code["nonce"])
        if grant == "refresh_token":
            with self._ilock:
                held = self._refresh.pop(form.get("refresh_token", ""), None)
            if held is None or held[0] != client.client_id or held[1] in self.revoked:
                raise self._fail("invalid_grant", "AADSTS65001: The user or administrator "
                                 "has not consented to use the application.",
                                 suberror="consent_required")
            return self._delegated(client, held[1], form.get("scope") or held[2])
        if grant == DEVICE_GRANT:
            with self._ilock:
                state = self._devices.get(form.get("device_code", ""))
                if state is None or state["client"] != client.client_id:
                    raise self._fail("invalid_grant", "AADSTS70000: unknown device code.")
                if state["expires"] < time.time():
                    raise self._fail("expired_token", "AADSTS70020: the device code expired.")
                state["polls"] += 1
                if state["user"] is None and self.login_as:
                    state["user"] = self.login_as.lower()
                if state["user"] is None or state["polls"] <= self.pending_polls:
                    raise self._fail("authorization_pending", "AADSTS70016: OAuth 2.0 device "
                                     "flow error. Authorization is pending.")
                del self._devices[form["device_code"]]
                self.revoked.discard(state["user"])
            return self._delegated(client, state["user"], state["scope"])
        raise self._fail("unsupported_grant_type", f"AADSTS70003: grant {grant!r}.")

    def _delegated(self, client: Client, user: str, scope: str,
                   nonce: str | None = None) -> dict:
        oid = self.users.get(user)
        if oid is None:
            raise self._fail("invalid_grant", "AADSTS50034: user account not found.")
        token, lifetime = self.tokens.issue()
        refresh = secrets.token_urlsafe(32)
        with self._ilock:
            self._principals[token] = Principal(client.client_id, user, oid)
            self._refresh[refresh] = (client.client_id, user, scope)
        now = int(time.time())
        claims = {"aud": client.client_id, "iss": f"{self.url}/{self.tenant_id}/v2.0",
                  "iat": now, "nbf": now, "exp": now + 3600, "oid": oid, "sub": oid,
                  "tid": self.tenant_id, "preferred_username": user, "name": user,
                  "ver": "2.0"}
        if nonce:
            claims["nonce"] = nonce
        id_token = ".".join((_b64(b'{"typ":"JWT","alg":"none"}'),
                             _b64(json.dumps(claims).encode()), ""))
        scopes = " ".join(s for s in scope.split()
                          if s not in ("openid", "profile", "offline_access"))
        return {"token_type": "Bearer", "scope": scopes, "expires_in": int(lifetime),
                "ext_expires_in": int(lifetime), "access_token": token,
                "refresh_token": refresh, "id_token": id_token,
                "client_info": _b64(json.dumps({"uid": oid, "utid": self.tenant_id}).encode())}
