"""Helpers of the APSIS One tests."""

import requests


def token(emu) -> str:
    r = requests.post(f"{emu.url}/oauth/token", json={
        "grant_type": "client_credentials", "client_id": emu.client_id,
        "client_secret": emu.client_secret}, timeout=5)
    r.raise_for_status()
    return r.json()["access_token"]


def requests_to(emu, method: str, fragment: str) -> list[tuple[str, int]]:
    """(path, status) of the requests the emulator saw with ``method`` and ``fragment``."""
    return [(path, status) for _, m, path, status in list(emu.requests)
            if m == method and fragment in path]
