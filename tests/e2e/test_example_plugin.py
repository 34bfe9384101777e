"""The example third-party connector (examples/syncd-example-connector), installed with pip
into a fresh virtual environment beside syncd: ``syncd plugins`` lists it, and the daemon of
that environment syncs Notebook contacts into APSIS One through it, by a full sync and by a
webhook. Slow: it builds a virtual environment (pip's cache and the local indexes only)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_support import free_port, subprocess_env, wait_for, wait_run, write_config
from syncd_apsis.connector import ApsisConnector
from syncd_apsis.emulator import ApsisEmulator

from syncd.app.admin import AdminClient
from syncd.exceptions import AdminError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "syncd-example-connector"

pytestmark = pytest.mark.slow
FIRST = "com.apsis1.attributes.firstname"


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
    return subprocess.run([str(venv / "bin" / "syncd"), *args], capture_output=True, text=True,
                          timeout=120, env=subprocess_env(), stdin=subprocess.DEVNULL)


def test_syncd_plugins_lists_the_example(venv):
    out = run(venv, "plugins")
    assert out.returncode == 0, out.stderr
    line = next(line for line in out.stdout.splitlines() if " example " in line)
    assert "notebook" in line and "loaded" in line
    assert "parse_webhooks, read_record, read_records" in line


def test_the_daemon_syncs_through_the_example(venv, tmp_path):
    sys.path.insert(0, str(EXAMPLE / "src"))  # the emulator runs in this process
    try:
        from syncd_example.emulator import NotebookEmulator
    finally:
        sys.path.remove(str(EXAMPLE / "src"))
    receiver, admin = free_port(), free_port()
    with NotebookEmulator() as notebook, ApsisEmulator(seed=1) as apsis:
        notebook.seed(12)
        source = {"kind": "notebook", "base_url": notebook.url, "api_key": notebook.api_key,
                  "webhook_secret": notebook.webhook_secret, "requests_per_second": 0.0}
        destination = {**ApsisConnector.sandbox_config(apsis), "requests_per_second": 1000.0}
        config = write_config(str(tmp_path / "syncd.toml"), {
            "daemon": {"state_dir": str(tmp_path / "state"), "log_format": "json"},
            "receiver": {"host": "127.0.0.1", "port": receiver,
                         "public_url": f"http://127.0.0.1:{receiver}"},
            "admin": {"host": "127.0.0.1", "port": admin},
            "connections": {"notebook": source, "apsis": destination},
            "integrations": {"nb-apsis": {"source": "notebook", "destination": "apsis",
                                          "fields": {"name": "firstname"}}},
        })
        checked = run(venv, "check-config", "-c", config)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        log = open(tmp_path / "daemon.log", "wb")
        proc = subprocess.Popen([str(venv / "bin" / "syncd"), "run", "-c", config],
                                stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=subprocess_env())
        try:
            client = wait_for(lambda: ready(proc, tmp_path, admin), 60, "the daemon")
            run_id = client.start_sync("nb-apsis", confirm=True)["run_id"]
            assert wait_run(client, run_id)["status"] == "completed"
            held = apsis.snapshot()
            assert sorted(held) == sorted(notebook.contacts)
            first = "nb-0003"
            assert held[first][FIRST] == notebook.contacts[first]["name"]

            notebook.contacts[first]["name"] = "Renamed"  # then Notebook's webhook
            headers, body = notebook.delivery(first)
            import requests

            answer = requests.post(f"http://127.0.0.1:{receiver}/webhooks/notebook",
                                   data=body, headers=headers, timeout=10)
            assert answer.status_code in (200, 202, 204)
            wait_for(lambda: apsis.snapshot()[first].get(FIRST) == "Renamed", 30,
                     "the webhook's change in APSIS")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            log.close()
        assert proc.returncode == 0, (tmp_path / "daemon.log").read_text()[-3000:]


def ready(proc: subprocess.Popen, tmp_path: Path, port: int) -> AdminClient | None:
    if proc.poll() is not None:
        raise AssertionError(f"the daemon exited with {proc.returncode}:\n"
                             f"{(tmp_path / 'daemon.log').read_text()[-3000:]}")
    token = tmp_path / "state" / "admin.token"
    if not token.exists() or not token.read_text().strip():
        return None
    client = AdminClient("127.0.0.1", port, token.read_text().strip(), timeout=10.0)
    try:
        client.status()
    except AdminError:
        return None
    return client


def test_the_examples_own_contract_tests_pass(venv):
    """The plugin's tests run in its environment, with syncd's pytest plugin."""
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "pytest"]
    assert subprocess.run(pip, capture_output=True, timeout=300,
                          env=subprocess_env()).returncode == 0
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p",
                           "no:cacheprovider", str(EXAMPLE / "tests")], capture_output=True,
                          text=True, timeout=300, env=subprocess_env(), cwd=str(EXAMPLE))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert os.path.isdir(EXAMPLE / "tests")
