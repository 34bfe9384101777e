"""``syncd ms365 authorize`` / ``syncd ms365 users`` and the connection's token handling
against the identity emulator, with the real MSAL code: device code, auth code, application
permissions with the allow-list; the token cache file (0600) across processes; silent
refresh; a revoked consent marks that user only."""

from __future__ import annotations

import json
import os
import re
import stat

import pytest
import tomli_w
from syncd_ms365.auth import Accounts, ConsentRequired

from syncd.app.cli import main
from tests.ms365.conftest import APP_ID, APP_SECRET, CLIENT_ID

ANNA, BOB = "anna@contoso.example", "bob@contoso.example"


def write_config(tmp_path, identity, **options) -> str:
    connection = {"kind": "ms365", "authority": identity.authority, "client_id": CLIENT_ID,
                  "ca_bundle": identity.ca_bundle, "graph_url": "http://127.0.0.1:9/v1.0",
                  **options}
    config = {"daemon": {"state_dir": str(tmp_path / "state")},
              "connections": {"outlook": connection}}
    path = tmp_path / "syncd.toml"
    path.write_text(tomli_w.dumps(config))
    return str(path)


def accounts(tmp_path, identity, **options) -> Accounts:
    from syncd.config import load
    from syncd.connectors.plugins import load as plugins
    config = load(write_config(tmp_path, identity, **options), plugins())
    return Accounts("outlook", config.connections["outlook"].options, config.daemon.state_dir)


def test_device_code_links_a_user_and_keeps_the_cache_private(tmp_path, identity, capsys):
    config = write_config(tmp_path, identity)
    identity.login_as = ANNA  # the person enters the code in a browser
    identity.pending_polls = 1
    identity.tokens.lifetime = 60  # MSAL refreshes a token that ends within 5 minutes
    assert main(["ms365", "authorize", "outlook", "--user", ANNA, "-c", config]) == 0
    out = capsys.readouterr().out
    assert "enter the code" in out and f"{ANNA} is linked" in out
    cache = tmp_path / "state" / "ms365-outlook.tokens.json"
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o600
    assert main(["ms365", "users", "outlook", "-c", config, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[ANNA]["state"] == "linked"
    # the daemon (another process) refreshes silently from the cache the CLI wrote
    daemon = accounts(tmp_path, identity)
    identity.tokens.expire_all()
    token = daemon.token(ANNA)  # silently, with the refresh token from the cache
    assert identity.principal(token).user == ANNA
    for secret in re.findall(r'"secret": "([^"]+)"', cache.read_text()):
        assert secret not in out


def test_signing_in_as_another_user_is_refused(tmp_path, identity, capsys):
    config = write_config(tmp_path, identity)
    identity.login_as = BOB
    assert main(["ms365", "authorize", "outlook", "--user", ANNA, "-c", config]) == 1
    assert f"signed in as {BOB}" in capsys.readouterr().err


def test_revoked_consent_marks_that_user_and_the_other_goes_on(tmp_path, identity, capsys):
    config = write_config(tmp_path, identity)
    for user in (ANNA, BOB):
        identity.login_as = user
        assert main(["ms365", "authorize", "outlook", "--user", user, "-c", config]) == 0
    daemon = accounts(tmp_path, identity)
    identity.revoke(ANNA)
    with pytest.raises(ConsentRequired) as caught:
        daemon.token(ANNA, force_refresh=True)  # what a 401 from Graph leads to
    assert "AADSTS65001" in caught.value.reason
    assert identity.principal(daemon.token(BOB, force_refresh=True)).user == BOB
    capsys.readouterr()
    main(["ms365", "users", "outlook", "-c", config])
    table = capsys.readouterr().out
    assert re.search(rf"{ANNA}\s+consent_required", table)
    assert re.search(rf"{BOB}\s+linked", table)
    # linking again heals it
    identity.login_as = ANNA
    assert main(["ms365", "authorize", "outlook", "--user", ANNA, "-c", config]) == 0
    assert identity.principal(daemon.token(ANNA, force_refresh=True)).user == ANNA


def test_auth_code_flow_through_the_redirect(tmp_path, identity, capsys, monkeypatch):
    from syncd_ms365.http_client import PinnedSession
    redirect = "http://127.0.0.1:8400/ms365/redirect"
    config = write_config(tmp_path, identity, flow="auth_code", redirect_uri=redirect)

    def browser(prompt):
        url = re.search(r"https://\S+", capsys.readouterr().out).group(0)
        answer = PinnedSession(identity.ca_bundle).get(url, allow_redirects=False)
        return answer.headers["Location"]
    monkeypatch.setattr("builtins.input", browser)
    assert main(["ms365", "authorize", "outlook", "--user", ANNA, "-c", config]) == 0
    assert accounts(tmp_path, identity, flow="auth_code", redirect_uri=redirect).token(ANNA)


def test_application_permissions_only_for_allowed_users(tmp_path, identity, capsys):
    config = write_config(tmp_path, identity, flow="application", client_id=APP_ID,
                          client_secret=APP_SECRET, allowed_users=[ANNA])
    assert main(["ms365", "authorize", "outlook", "--user", ANNA, "-c", config]) == 0
    assert main(["ms365", "authorize", "outlook", "--user", BOB, "-c", config]) == 1
    assert "not in allowed_users" in capsys.readouterr().err
    daemon = accounts(tmp_path, identity, flow="application", client_id=APP_ID,
                      client_secret=APP_SECRET, allowed_users=[ANNA])
    assert identity.principal(daemon.token(ANNA)).user is None  # an application token
    with pytest.raises(ConsentRequired):
        daemon.token(BOB)
    assert APP_SECRET not in capsys.readouterr().out


def test_config_checks_of_the_flows(tmp_path, identity, capsys):
    config = write_config(tmp_path, identity, flow="application")
    assert main(["check-config", "-c", config]) == 1
    err = capsys.readouterr()
    assert "client_secret" in err.out + err.err and "allowed_users" in err.out + err.err


def test_status_names_the_user_whose_consent_was_revoked(tmp_path, identity):
    from syncd_ms365.connector import Ms365Connector

    config = write_config(tmp_path, identity)
    for user in (ANNA, BOB):
        identity.login_as = user
        assert main(["ms365", "authorize", "outlook", "--user", user, "-c", config]) == 0
    daemon = accounts(tmp_path, identity)
    connector = Ms365Connector("outlook", daemon.options)
    connector.state_dir = str(tmp_path / "state")
    connector.start()
    identity.revoke(ANNA)
    with pytest.raises(ConsentRequired):
        connector._token(ANNA, force_refresh=True)
    stats = connector.stats()
    (line,) = stats["attention"]
    assert line.startswith(f"{ANNA} consent_required") and "syncd ms365 authorize" in line
    assert stats["users"][BOB]["state"] == "linked"
