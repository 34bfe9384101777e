"""The identity emulator against the real MSAL code (apis.md 5.3): TLS with the generated CA,
openid configuration, device code with authorization_pending, auth code with PKCE, refresh,
client credentials, revoked consent."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qs, urlparse

import msal
import pytest
import requests
from syncd_ms365.http_client import PinnedSession

from tests.ms365.conftest import APP_ID, APP_SECRET, CLIENT_ID

SCOPES = ["Contacts.ReadWrite"]


def public_app(identity, cache=None):
    return msal.PublicClientApplication(
        CLIENT_ID, authority=identity.authority, instance_discovery=False,
        http_client=PinnedSession(identity.ca_bundle, 10), token_cache=cache)


def test_tls_is_trusted_only_through_the_ca_bundle(identity):
    url = f"{identity.authority}/v2.0/.well-known/openid-configuration"
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(url, timeout=5)
    config = PinnedSession(identity.ca_bundle).get(url).json()
    assert config["token_endpoint"].startswith("https://")
    assert config["issuer"] == f"{identity.authority}/v2.0"


def test_device_code_polls_through_authorization_pending(identity):
    identity.pending_polls = 2
    app = public_app(identity)
    flow = app.initiate_device_flow(scopes=SCOPES)
    assert "user_code" in flow, flow
    identity.approve_device(flow["user_code"], "anna@contoso.example")
    result = app.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result
    assert identity._devices == {}
    accounts = app.get_accounts()
    assert [a["username"] for a in accounts] == ["anna@contoso.example"]
    principal = identity.principal(result["access_token"])
    assert principal.user == "anna@contoso.example" and principal.client_id == CLIENT_ID


def test_silent_refresh_then_revoked_consent(identity):
    cache = msal.SerializableTokenCache()
    app = public_app(identity, cache)
    flow = app.initiate_device_flow(scopes=SCOPES)
    identity.approve_device(flow["user_code"], "bob@contoso.example")
    first = app.acquire_token_by_device_flow(flow)
    identity.tokens.expire_all()
    # a new app from the serialized cache, as after a restart
    restored = msal.SerializableTokenCache()
    restored.deserialize(cache.serialize())
    app2 = public_app(identity, restored)
    account = app2.get_accounts(username="bob@contoso.example")[0]
    refreshed = app2.acquire_token_silent(SCOPES, account=account, force_refresh=True)
    assert refreshed and "access_token" in refreshed
    assert refreshed["access_token"] != first["access_token"]
    identity.revoke("bob@contoso.example")
    assert identity.principal(refreshed["access_token"]) is None
    failed = app2.acquire_token_silent_with_error(SCOPES, account=account, force_refresh=True)
    assert failed["error"] == "invalid_grant"
    assert "AADSTS65001" in failed["error_description"]


def test_auth_code_flow_with_pkce_and_nonce(identity):
    app = public_app(identity)
    redirect = "http://127.0.0.1:8400/ms365/redirect"
    flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=redirect,
                                       login_hint="anna@contoso.example")
    answer = PinnedSession(identity.ca_bundle).get(flow["auth_uri"], allow_redirects=False)
    assert answer.status_code == 302
    location = urlparse(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == redirect
    params = {k: v[0] for k, v in parse_qs(location.query).items()}
    result = app.acquire_token_by_auth_code_flow(flow, params)
    assert "access_token" in result, result
    # MSAL sends the sha256 of the flow's nonce, and the id_token carries back what was sent
    assert result["id_token_claims"]["nonce"] == hashlib.sha256(
        flow["nonce"].encode()).hexdigest()
    assert app.get_accounts()[0]["username"] == "anna@contoso.example"


def test_auth_code_with_a_wrong_verifier_is_refused(identity):
    app = public_app(identity)
    redirect = "http://127.0.0.1:8400/ms365/redirect"
    flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=redirect,
                                       login_hint="anna@contoso.example")
    answer = PinnedSession(identity.ca_bundle).get(flow["auth_uri"], allow_redirects=False)
    params = {k: v[0] for k, v in parse_qs(urlparse(answer.headers["Location"]).query).items()}
    flow["code_verifier"] = "not-the-verifier-" + "x" * 40
    result = app.acquire_token_by_auth_code_flow(flow, params)
    assert result["error"] == "invalid_grant"


def test_client_credentials_need_the_secret_and_default_scope(identity):
    def app(secret):
        return msal.ConfidentialClientApplication(
            APP_ID, client_credential=secret, authority=identity.authority,
            instance_discovery=False, http_client=PinnedSession(identity.ca_bundle, 10))
    ok = app(APP_SECRET).acquire_token_for_client(["https://graph.microsoft.com/.default"])
    assert "access_token" in ok
    principal = identity.principal(ok["access_token"])
    assert principal.user is None and "Contacts.ReadWrite" in principal.roles
    bad = app("wrong").acquire_token_for_client(["https://graph.microsoft.com/.default"])
    assert bad["error"] == "invalid_client"


def test_token_endpoint_takes_only_a_form_body(identity):
    answer = PinnedSession(identity.ca_bundle).post(
        f"{identity.authority}/oauth2/v2.0/token", json={"grant_type": "client_credentials"})
    assert answer.status_code == 415
