"""systemd/syncd.service: the directives syncd relies on, and systemd's own verdict."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "syncd.service"


def directives() -> dict[str, list[str]]:
    """Section.Key -> values (a key may repeat, e.g. SystemCallFilter=)."""
    out: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return out


@pytest.mark.parametrize("key, value", [
    ("Service.Type", "notify"),
    ("Service.NotifyAccess", "main"),
    ("Service.ExecStart", "/usr/bin/syncd run -c /etc/syncd/syncd.toml"),
    ("Service.ExecReload", "/bin/kill -HUP $MAINPID"),
    ("Service.WatchdogSec", "30"),
    ("Service.TimeoutStopSec", "45"),
    ("Service.Restart", "on-failure"),
    ("Service.RestartPreventExitStatus", "78"),
    ("Service.StateDirectory", "syncd"),
    ("Service.StateDirectoryMode", "0700"),
    ("Service.ConfigurationDirectory", "syncd"),
    ("Service.UMask", "0077"),
    ("Service.NoNewPrivileges", "yes"),
    ("Service.ProtectSystem", "strict"),
    ("Service.ProtectHome", "yes"),
    ("Service.PrivateTmp", "yes"),
    ("Service.PrivateDevices", "yes"),
    ("Service.ProtectKernelTunables", "yes"),
    ("Service.ProtectKernelModules", "yes"),
    ("Service.ProtectKernelLogs", "yes"),
    ("Service.ProtectControlGroups", "yes"),
    ("Service.RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
    ("Service.RestrictNamespaces", "yes"),
    ("Service.LockPersonality", "yes"),
    ("Service.CapabilityBoundingSet", ""),
    ("Service.SystemCallFilter", "@system-service"),
    ("Install.WantedBy", "multi-user.target"),
    ("Service.EnvironmentFile", "-/etc/syncd/env"),
])
def test_key_directives(key, value):
    assert value in directives().get(key, []), f"{key}={value} missing from {UNIT}"


def test_runs_as_an_unprivileged_user():
    d = directives()
    assert d.get("Service.User") == ["syncd"] or d.get("Service.DynamicUser") == ["yes"]


def test_memory_and_tasks_are_bounded():
    d = directives()
    assert re.fullmatch(r"\d+[KMG]", d["Service.MemoryMax"][0])
    assert 64 <= int(d["Service.TasksMax"][0]) <= 4096


def test_load_credential_example_matches_the_config_form():
    """The unit shows LoadCredential= for the config's `{ credential = "NAME" }`."""
    text = UNIT.read_text()
    names = re.findall(r"^#LoadCredential=([\w.-]+):/etc/syncd/", text, flags=re.MULTILINE)
    assert names and "credential = " in text


def test_stop_timeout_leaves_room_for_the_daemons_own():
    from syncd.config.model import DaemonConfig

    assert int(directives()["Service.TimeoutStopSec"][0]) > DaemonConfig().stop_timeout


def _verifiable_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at a binary that exists here (verify checks it)."""
    text = re.sub(r"^ExecStart=/usr/bin/syncd", "ExecStart=/bin/true", UNIT.read_text(),
                  flags=re.MULTILINE)
    copy = tmp_path / "syncd.service"
    copy.write_text(text)
    return copy


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify_is_silent(tmp_path):
    copy = _verifiable_copy(tmp_path)
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(copy)],
                          capture_output=True, text=True, timeout=60)
    output = proc.stdout + proc.stderr
    assert not output.strip(), output
    assert proc.returncode == 0, output


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_hardening_exposure_stays_low(tmp_path):
    copy = _verifiable_copy(tmp_path)
    proc = subprocess.run(["systemd-analyze", "security", "--offline=true", str(copy)],
                          capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for syncd\.service: (\d+\.\d+)", proc.stdout)
    if found is None:
        pytest.skip(f"this systemd-analyze cannot score offline: {proc.stderr.strip()[:200]}")
    assert float(found.group(1)) <= 1.5, proc.stdout
