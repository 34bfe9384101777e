"""``syncd check-config --online`` with a Lime source: the real CLI against the emulators of
the two-CRM sandbox (Tribe and Lime into one APSIS account)."""

from __future__ import annotations

import socket

import pytest
import tomli_w
from e2e_support import syncd_cli

from syncd.app.sandbox import INTEGRATION, build_config, load_emulator
from syncd.connectors import plugins

LIME = f"{INTEGRATION}-lime"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(params=[True, False], ids=["consent-addon", "no-consent-addon"])
def sandbox(request, tmp_path):
    registry = plugins.load()
    tribe_cls, lime_cls, apsis_cls = (registry.connector(k) for k in ("tribe", "lime", "apsis"))
    tribe = load_emulator(tribe_cls)(seed=1)
    lime = load_emulator(lime_cls)(seed=2, api_key="acceptance-lime-k3y",
                                   consent_addon=request.param)
    apsis = load_emulator(apsis_cls)(seed=3)
    tribe.seed(10, seed=1)
    lime.seed(10, seed=2)
    for emu in (tribe, lime, apsis):
        emu.start()
    try:
        config = build_config(str(tmp_path / "state"), tribe_cls.sandbox_config(tribe),
                              apsis_cls.sandbox_config(apsis), tribe_cls.sandbox_rules(),
                              _port(), _port(), [("lime", lime_cls.sandbox_config(lime),
                                                  lime_cls.sandbox_rules())])
        path = str(tmp_path / "syncd.toml")

        def write(cfg) -> str:
            with open(path, "wb") as fh:
                tomli_w.dump(cfg, fh)
            return path

        yield config, write, request.param
    finally:
        for emu in (tribe, lime, apsis):
            emu.stop()


def test_lime_names_are_checked_online(sandbox):
    config, write, addon = sandbox
    result = syncd_cli("check-config", "--online", "-c", write(config))
    if addon:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "OK online" in result.stdout
    else:
        assert result.returncode == 1, result.stdout + result.stderr
        assert "connections.crm-lime.consent_limetype: Lime has no limetype 'consent': the " \
               "Lime consent add-on (limepkg-consent) is not installed" in result.stderr
    fields = config["integrations"][LIME]["fields"]
    fields["company.nme"] = fields.pop("company.name")
    config["connections"]["crm-lime"]["email_property"] = "e-mail"
    result = syncd_cli("check-config", "--online", "-c", write(config))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f'integrations.{LIME}.fields."company.nme"' in result.stderr
    assert 'did you mean "company.name"?' in result.stderr
    assert 'connections.crm-lime.email_property' in result.stderr
    assert 'did you mean "email"?' in result.stderr
    assert "acceptance-lime-k3y" not in result.stdout + result.stderr
