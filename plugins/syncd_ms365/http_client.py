"""The HTTP session MSAL is given: it trusts exactly the connection's CA bundle and never
waits forever (msal has no default timeout, apis.md 5.1).

``requests`` lets ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` from the environment override a
session's ``verify``; a connection that names a ``ca_bundle`` must not be overridden by the
environment, so the bundle is passed on each request instead."""

from __future__ import annotations

import requests


class PinnedSession(requests.Session):
    def __init__(self, ca_bundle: str | None = None, timeout: float = 30.0):
        super().__init__()
        self.ca_bundle = ca_bundle or None
        self.timeout = timeout
        adapter = requests.adapters.HTTPAdapter(max_retries=1)
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def request(self, method, url, **kwargs):
        if self.ca_bundle:
            kwargs["verify"] = self.ca_bundle
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, **kwargs)
