"""Acceptance of ``syncd check-config --online``: the real CLI, as a process, against the
sandbox's emulators (started and configured as ``syncd sandbox`` does)."""

from __future__ import annotations

import socket

import pytest
import tomli_w
from e2e_support import syncd_cli

from syncd.app.sandbox import INTEGRATION, build_config, load_emulator
from syncd.connectors import plugins

KEY_LABELS_NAV = "connections.crm.labels_nav"
KEY_ATTRIBUTE = f'integrations.{INTEGRATION}.fields."Contact.Organization.Name"'
KEY_FIELD = f"integrations.{INTEGRATION}.fields.FirstNme"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sandbox(tmp_path):
    """The sandbox's emulators and the config ``syncd sandbox`` writes for them:
    ``(config dict, write(config) -> path, secrets)``."""
    registry = plugins.load()
    src_cls, dst_cls = registry.connector("tribe"), registry.connector("apsis")
    src = load_emulator(src_cls)(seed=1, client_secret="acceptance-tribe-s3cret")
    dst = load_emulator(dst_cls)(seed=2, client_secret="acceptance-apsis-s3cret")
    src.seed(20, seed=1)
    src.start()
    dst.start()
    try:
        config = build_config(str(tmp_path / "state"), src_cls.sandbox_config(src),
                              dst_cls.sandbox_config(dst), src_cls.sandbox_rules(),
                              _closed_port(), _closed_port())

        def write(cfg) -> str:
            path = str(tmp_path / "syncd.toml")
            with open(path, "wb") as fh:
                tomli_w.dump(cfg, fh)
            return path

        yield config, write, (src.client_secret, dst.client_secret, src.webhook_secret)
    finally:
        src.stop()
        dst.stop()


def _no_secret(result, secrets) -> None:
    for secret in secrets:
        assert secret not in result.stdout + result.stderr


def test_the_sandbox_config_passes_online(sandbox):
    config, write, secrets = sandbox
    path = write(config)
    result = syncd_cli("check-config", "--online", "-c", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK online" in result.stdout
    _no_secret(result, secrets)
    positional = syncd_cli("check-config", path, "--online")  # the file as an argument
    assert positional.returncode == 0, positional.stderr
    two = syncd_cli("check-config", "-c", path, path + ".other")
    assert two.returncode == 2 and "two config files given" in two.stderr


def test_three_wrong_names_are_named_with_their_keys_and_suggestions(sandbox):
    config, write, secrets = sandbox
    config["connections"]["crm"]["labels_nav"] = "LabelAssignment"
    fields = config["integrations"][INTEGRATION]["fields"]
    fields["Contact.Organization.Name"] = "companyname"  # the section has "company"
    fields["FirstNme"] = fields.pop("FirstName")  # Tribe has FirstName
    path = write(config)
    offline = syncd_cli("check-config", path)
    assert offline.returncode == 0  # nothing a file alone can tell
    result = syncd_cli("check-config", "--online", "-c", path)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.splitlines()

    def line_of(key: str) -> str:
        found = [line for line in lines if f": {key}: " in line]
        assert len(found) == 1, f"{key} not named once in:\n{result.stderr}"
        return found[0]

    assert 'did you mean "LabelAssignments"?' in line_of(KEY_LABELS_NAV)
    assert 'did you mean "company"?' in line_of(KEY_ATTRIBUTE)
    assert 'did you mean "FirstName"?' in line_of(KEY_FIELD)
    assert "the account has: LabelAssignments" in line_of(KEY_LABELS_NAV)
    assert "3 name(s) the accounts do not have" in result.stderr
    _no_secret(result, secrets)


def test_an_unreachable_account_is_a_connection_error_not_a_config_problem(sandbox):
    config, write, secrets = sandbox
    config["connections"]["marketing"].update(base_url=f"http://127.0.0.1:{_closed_port()}",
                                              max_attempts=1)
    config["connections"]["crm"]["client_secret"] = "not-the-secret"
    path = write(config)
    result = syncd_cli("check-config", "--online", "-c", path)
    assert result.returncode == 69, result.stdout + result.stderr
    assert "connections.marketing: cannot check the account (connection error" in result.stderr
    assert "connections.crm: cannot check the account (connection error" in result.stderr
    assert "401" in result.stderr
    assert "name(s) the accounts do not have" not in result.stderr
    _no_secret(result, (*secrets, "not-the-secret"))
