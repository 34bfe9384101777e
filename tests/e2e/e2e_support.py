"""Helpers of the end-to-end tests: the real ``syncd`` as a process against the emulators.

The emulators run in the test process (their Python helpers stay usable); the daemon and the
CLI run as ``python -m syncd.app.cli ...`` subprocesses with a config written by the test. Every
wait polls with a deadline; every process is killed if it does not stop in time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import tomli_w
from syncd_apsis.connector import ApsisConnector
from syncd_tribe.connector import TribeConnector

from syncd import config as config_mod
from syncd.app.admin import AdminClient
from syncd.app.sandbox import INTEGRATION, compare
from syncd.connectors import plugins
from syncd.engine.store import Store
from syncd.exceptions import AdminError
from syncd.testing import free_port as free_port
from syncd.testing import wait_until as wait_for

#: The integration's name: the one ``syncd.app.sandbox.compare`` reads the rules of.
NAME = INTEGRATION

#: Distinctive secrets, so that a leak into any output is unmistakable.
TRIBE_CLIENT_SECRET = "e2e-tribe-client-s3cret-5b7e1c"
APSIS_CLIENT_SECRET = "e2e-apsis-client-s3cret-9d04af"
WEBHOOK_SECRET = "e2e-webhook-s3cret-a61f38"
SECRETS = (TRIBE_CLIENT_SECRET, APSIS_CLIENT_SECRET, WEBHOOK_SECRET)

PYTHON = sys.executable


def subprocess_env(pythonpath: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCD_", "NOTIFY_",
                                                                     "WATCHDOG_"))}
    env["COLUMNS"] = "250"  # rich tables: no truncated cells
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("JOURNAL_STREAM", None)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH"))
                                            if p)
    return env


def syncd_cli(*args: str, timeout: float = 60.0, pythonpath: str | None = None
              ) -> subprocess.CompletedProcess:
    """Run ``syncd ARGS`` to completion (killed after ``timeout``)."""
    return subprocess.run([PYTHON, "-m", "syncd.app.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=subprocess_env(pythonpath), stdin=subprocess.DEVNULL)


# -- config -------------------------------------------------------------------------------------


def build_config(state_dir: str, tribe, apsis, *, receiver_port: int, admin_port: int,
                 log_level: str = "info", stop_timeout: float = 10.0,
                 integration: dict[str, Any] | None = None,
                 apsis_options: dict[str, Any] | None = None) -> dict[str, Any]:
    source = TribeConnector.sandbox_config(tribe)
    destination = ApsisConnector.sandbox_config(apsis)
    destination.update({"requests_per_second": 1000.0, "concurrency": 8})
    destination.update(apsis_options or {})
    rules = {"source": "tribe", "destination": "apsis", "page_size": 50,
             **TribeConnector.sandbox_rules(), **(integration or {})}
    return {
        "daemon": {"state_dir": state_dir, "log_level": log_level, "log_format": "json",
                   "stop_timeout": stop_timeout, "restart_backoff_max": 2.0},
        "receiver": {"host": "127.0.0.1", "port": receiver_port,
                     "public_url": f"http://127.0.0.1:{receiver_port}"},
        "admin": {"host": "127.0.0.1", "port": admin_port},
        "connections": {"tribe": source, "apsis": destination},
        "integrations": {NAME: rules},
    }


def write_config(path: str, config: dict[str, Any]) -> str:
    with open(path, "wb") as fh:
        tomli_w.dump(config, fh)
    return path


# -- the daemon as a process --------------------------------------------------------------------


class DaemonProcess:
    """``syncd run -c CONFIG`` as a subprocess; stdout and stderr go to ``log_path``."""

    def __init__(self, config_path: str, log_path: str, *, pythonpath: str | None = None):
        self.config_path = config_path
        self.log_path = log_path
        self.pythonpath = pythonpath
        with open(config_path, "rb") as fh:
            import tomllib

            raw = tomllib.load(fh)
        self.state_dir = raw["daemon"]["state_dir"]
        self.admin_port = raw["admin"]["port"]
        self.receiver_port = raw["receiver"]["port"]
        self.proc: subprocess.Popen | None = None
        self.client: AdminClient | None = None
        self._log_offset = 0

    # life cycle

    def start(self) -> DaemonProcess:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._log_offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [PYTHON, "-m", "syncd.app.cli", "run", "-c", self.config_path],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=subprocess_env(self.pythonpath))
        self.client = None
        return self

    def wait_ready(self, timeout: float = 30.0) -> AdminClient:
        """Until the admin endpoint answers ``status`` (the daemon is fully started)."""
        token_file = os.path.join(self.state_dir, "admin.token")

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"the daemon exited with {self.proc.returncode}:\n"
                                     f"{self.log_tail()}")
            if not os.path.exists(token_file):
                return None
            with open(token_file) as fh:
                token = fh.read().strip()
            if not token:
                return None
            client = AdminClient("127.0.0.1", self.admin_port, token, timeout=10.0)
            try:
                client.status()
            except AdminError:
                return None
            return client

        try:
            self.client = wait_for(ready, timeout, "the daemon's admin endpoint")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log_tail()}") from None
        return self.client

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        assert self.running(), "the daemon is not running"
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL, at once; waits until the process is gone."""
        if self.running():
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(10)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit within ``timeout``."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    # the log

    def log_text(self, since_start: bool = False) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                if since_start:
                    fh.seek(self._log_offset)
                return fh.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_events(self, since_start: bool = False) -> list[dict[str, Any]]:
        """The JSON lines of the log, parsed (other lines are skipped)."""
        out = []
        for line in self.log_text(since_start).splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


# -- what the tests ask of a running daemon -----------------------------------------------------


def integration_status(client: AdminClient) -> dict[str, Any]:
    return client.status()["integrations"][NAME]


def full_sync(client: AdminClient, timeout: float = 60.0) -> dict[str, Any]:
    run_id = client.start_sync(NAME, confirm=True)["run_id"]
    return wait_run(client, run_id, timeout)


def wait_run(client: AdminClient, run_id: int, timeout: float = 60.0) -> dict[str, Any]:
    def ended():
        run = client.run(run_id)
        return run if run["status"] != "running" else None

    return wait_for(ended, timeout, f"run #{run_id} to end", interval=0.1)


def wait_inbox_empty(client: AdminClient, timeout: float = 60.0) -> dict[str, Any]:
    """Until no real-time event of the integration is pending; returns the inbox counts."""
    def empty():
        inbox = integration_status(client)["inbox"]
        return (inbox,) if inbox.get("pending", 0) == 0 else None  # {} is an empty inbox

    return wait_for(empty, timeout, "the inbox to drain", interval=0.1)[0]


def wait_webhooks_registered(tribe, receiver_port: int, timeout: float = 30.0) -> None:
    url = f"http://127.0.0.1:{receiver_port}/webhooks/tribe"
    wanted = 2  # the default webhook_entity_types: Relation.Person and the contact
    wait_for(lambda: len([w for w in tribe.webhooks() if w["url"] == url]) >= wanted,
             timeout, "the daemon to register its webhooks with the Tribe emulator")


def differences(config_path: str, tribe, apsis) -> list[str]:
    """``syncd.app.sandbox.compare``: APSIS against Tribe's current data under the config's rules.
    Empty when APSIS holds exactly what it should."""
    registry = plugins.load()
    config = config_mod.load(config_path, registry)
    store = Store(os.path.join(config.daemon.state_dir, "syncd.db"))
    try:
        view = SimpleNamespace(config=config, store=store)
        return compare(view, TribeConnector, ApsisConnector,
                       TribeConnector.sandbox_config(tribe), apsis.snapshot())
    finally:
        store.close()


def duplicate_profiles(apsis) -> list[str]:
    """Profiles beyond one per CRM id, and CRM ids or e-mail addresses held by two profiles."""
    from syncd_apsis.audience import CRM_ID, EMAIL

    problems = []
    with apsis.lock:
        profiles = list({id(p): p for p in apsis.audience.profiles.values()}.values())
        crm_ids = [p.keys.get(CRM_ID) for p in profiles]
        emails = [p.keys.get(EMAIL) for p in profiles if p.keys.get(EMAIL)]
    if None in crm_ids:
        problems.append(f"{crm_ids.count(None)} profile(s) without a CRM id")
    for kind, keys in (("crm id", [k for k in crm_ids if k]), ("email", emails)):
        seen: set[str] = set()
        for key in keys:
            if key in seen:
                problems.append(f"{kind} {key} on two profiles")
            seen.add(key)
    return problems


def matching_persons(tribe, apsis, count: int) -> list[str]:
    """Ids of ``count`` persons that have a profile in APSIS (they match the conditions)."""
    snapshot = apsis.snapshot()
    ids = sorted(p["ID"] for p in tribe.persons() if p["ID"] in snapshot)
    assert len(ids) >= count, f"only {len(ids)} synced persons, wanted {count}"
    return ids[:count]


def matching_in_tribe(tribe, count: int) -> list[str]:
    """Ids of ``count`` persons whose contact matches the sandbox conditions (read from the
    emulator, no sync needed)."""
    ids = sorted(c["Person"]["ID"] for c in tribe.contacts()
                 if c.get("CustomerType") == "A" and not c.get("IsFormer"))
    assert len(ids) >= count
    return ids[:count]
