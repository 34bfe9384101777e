"""The example third-party connector (examples/syncd-example-connector), installed with pip
into a fresh virtual environment beside syncd: ``syncd plugins`` lists it, and its own tests
pass there, among them the daemon of that environment syncing Notebook contacts into APSIS One
through it (``tests/test_daemon.py`` of the example, which launches the daemon as a plugin
author would: ``syncd.testing``'s ``daemons``). Slow: it builds a virtual environment (pip's
cache and the local indexes only)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_support import subprocess_env, syncd_cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "syncd-example-connector"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh virtual environment with syncd (editable, from this checkout) and the example
    plugin (a regular install of a copy, as a third party's package would be)."""
    base = tmp_path_factory.mktemp("example-venv")
    subprocess.run([sys.executable, "-m", "venv", str(base / "venv")], check=True,
                   timeout=120)
    example = base / "syncd-example-connector"
    shutil.copytree(EXAMPLE, example, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__"))
    pip = [str(base / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    done = subprocess.run([*pip, "-e", str(ROOT), str(example)], capture_output=True,
                          text=True, timeout=900, env=subprocess_env())
    assert done.returncode == 0, done.stdout + done.stderr
    return base / "venv"


def run(venv: Path, *args: str) -> subprocess.CompletedProcess:
    return syncd_cli(*args, timeout=120, command=[str(venv / "bin" / "syncd")])


def test_syncd_plugins_lists_the_example(venv):
    out = run(venv, "plugins")
    assert out.returncode == 0, out.stderr
    line = next(line for line in out.stdout.splitlines() if " example " in line)
    assert "notebook" in line and "loaded" in line
    assert "parse_webhooks, read_record, read_records" in line


def test_the_examples_own_tests_pass_and_its_daemon_syncs_through_it(venv):
    """The plugin's tests run in its environment, with syncd's pytest plugin: its contract
    tests, and its end-to-end test, in which the daemon of that environment (``syncd run``
    through ``syncd.testing``'s ``daemons``) syncs Notebook contacts into APSIS One by a full
    sync and by a webhook."""
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "pytest"]
    assert subprocess.run(pip, capture_output=True, timeout=300,
                          env=subprocess_env()).returncode == 0
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pytest", "-v", "-p",
                           "no:cacheprovider", str(EXAMPLE / "tests")], capture_output=True,
                          text=True, timeout=300, env=subprocess_env(), cwd=str(EXAMPLE))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    for test in ("test_contract.py::TestNotebookContract", "test_contract.py::test_the_",
                 "test_daemon.py::test_the_daemon_syncs_notebook_into_apsis"):
        assert any(test in line and "PASSED" in line for line in done.stdout.splitlines()), \
            (test, done.stdout[-3000:])
