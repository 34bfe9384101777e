"""Shared bench plumbing: emulators and a daemon as separate processes, as in production, so
that the daemon's own CPU time and peak memory can be read from /proc."""

from __future__ import annotations

import importlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

import requests
import tomli_w

from syncd import plugins


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def proc_status(pid: int) -> dict[str, int]:
    """VmHWM (peak RSS) and VmRSS in kB, and CPU seconds (user+system) of a process."""
    out = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(("VmHWM:", "VmRSS:")):
                out[line.split(":")[0]] = int(line.split()[1])
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    out["cpu"] = (int(fields[11]) + int(fields[12])) / tick
    return out


@contextmanager
def emulator_process(kind: str, contacts: int = 0, latency: float = 0.0, **faults):
    """`syncd emulate KIND` in its own process; yields (emulator-shaped object, url)."""
    registry = plugins.load()
    cls = registry.connector(kind)
    module, _, name = cls.emulator.partition(":")
    emu_cls = getattr(importlib.import_module(module), name)
    port = free_port()
    cmd = [sys.executable, "-m", "syncd.cli", "emulate", kind, "--port", str(port),
           "--contacts", str(contacts)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/_emulator/stats", timeout=120)
        settings = dict(faults)
        if latency:
            settings["latency"] = latency
        if settings:
            requests.post(f"{url}/_emulator/faults", json=settings, timeout=5).raise_for_status()
        handle = emu_cls(port=port)  # not started: gives sandbox_config the url and credentials
        yield cls, handle, url, proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def daemon_process(config: dict):
    tmp = tempfile.mkdtemp(prefix="syncd-bench-")
    config["daemon"]["state_dir"] = os.path.join(tmp, "state")
    path = os.path.join(tmp, "syncd.toml")
    with open(path, "wb") as fh:
        tomli_w.dump(config, fh)
    log = open(os.path.join(tmp, "syncd.log"), "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "syncd.cli", "run", "-c", path],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        from syncd.admin import AdminClient

        admin = config["admin"]
        token_file = os.path.join(config["daemon"]["state_dir"], "admin.token")
        deadline = time.monotonic() + 60
        while not os.path.exists(token_file):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the daemon did not start; see {tmp}/syncd.log")
            time.sleep(0.05)
        time.sleep(0.1)
        with open(token_file) as fh:
            client = AdminClient(admin["host"], admin["port"], fh.read().strip())
        deadline = time.monotonic() + 60
        while True:
            try:
                client.status()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield proc, client, tmp
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def base_config(source: dict, destination: dict, rules: dict) -> dict:
    return {
        "daemon": {"state_dir": "", "log_level": "warning", "log_format": "json"},
        "receiver": {"host": "127.0.0.1", "port": free_port()},
        "admin": {"host": "127.0.0.1", "port": free_port()},
        "connections": {"crm": source, "marketing": destination},
        "integrations": {"bench": {"source": "crm", "destination": "marketing", **rules}},
    }


def run_full_sync(client, integration: str = "bench", timeout: float = 3600) -> dict:
    run_id = client.start_sync(integration, confirm=True)["run_id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.run(run_id)
        if run["status"] != "running":
            return run
        time.sleep(0.2)
    raise RuntimeError("full sync did not finish")
