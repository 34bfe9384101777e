"""Helpers of the Microsoft 365 tests: tokens from the identity emulator through real MSAL,
and a Graph session."""

from __future__ import annotations

import msal
import requests
from syncd_ms365.http_client import PinnedSession

from tests.ms365.conftest import APP_ID, APP_SECRET, CLIENT_ID


def delegated_token(identity, user: str) -> str:
    app = msal.PublicClientApplication(
        CLIENT_ID, authority=identity.authority, instance_discovery=False,
        http_client=PinnedSession(identity.ca_bundle, 10))
    flow = app.initiate_device_flow(scopes=["Contacts.ReadWrite"])
    identity.approve_device(flow["user_code"], user)
    return app.acquire_token_by_device_flow(flow)["access_token"]


def app_token(identity) -> str:
    app = msal.ConfidentialClientApplication(
        APP_ID, client_credential=APP_SECRET, authority=identity.authority,
        instance_discovery=False, http_client=PinnedSession(identity.ca_bundle, 10))
    return app.acquire_token_for_client(["https://graph.microsoft.com/.default"])[
        "access_token"]


def session(token: str) -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token}"
    return s
