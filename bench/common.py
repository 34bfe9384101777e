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

from syncd.connectors import plugins


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
def emulator_process(kind: str, contacts: int = 0, latency: float = 0.0,
                     settings: dict | None = None, **faults):
    """`syncd emulate KIND` in its own process; yields (connector class, emulator-shaped
    object, url, process). ``settings`` go to ``POST /_emulator/settings`` (budgets)."""
    registry = plugins.load()
    cls = registry.connector(kind)
    module, _, name = cls.emulator.partition(":")
    emu_cls = getattr(importlib.import_module(module), name)
    port = free_port()
    cmd = [sys.executable, "-m", "syncd.app.cli", "emulate", kind, "--port", str(port),
           "--contacts", str(contacts)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/_emulator/stats", timeout=300)
        extra = dict(settings or {})
        settings = dict(faults)
        if latency:
            settings["latency"] = latency
        if settings:
            requests.post(f"{url}/_emulator/faults", json=settings, timeout=5).raise_for_status()
        if extra:
            requests.post(f"{url}/_emulator/settings", json=extra, timeout=5).raise_for_status()
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
    """The daemon (``syncd run``) in its own process."""
    tmp = tempfile.mkdtemp(prefix="syncd-bench-")
    config["daemon"]["state_dir"] = os.path.join(tmp, "state")
    path = os.path.join(tmp, "syncd.toml")
    with open(path, "wb") as fh:
        tomli_w.dump(config, fh)
    log = open(os.path.join(tmp, "syncd.log"), "wb")
    proc = subprocess.Popen([sys.executable, "-m", "syncd.app.cli", "run", "-c", path],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        from syncd.app.admin import AdminClient

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


def base_config(source: dict, destination: dict, rules: dict, *,
                public_url: bool = False) -> dict:
    """A daemon config; with ``public_url`` the receiver's URL is set, so the daemon registers
    its webhooks with the source (as in production)."""
    port = free_port()
    receiver = {"host": "127.0.0.1", "port": port}
    if public_url:
        receiver["public_url"] = f"http://127.0.0.1:{port}"
    return {
        "daemon": {"state_dir": "", "log_level": "warning", "log_format": "json"},
        "receiver": receiver,
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


# -- budgets, rules, emulator stats --------------------------------------------------------------

#: APSIS One as documented (apis.md 3.8): 100 requests/s for the account, 10/s per profile key.
DOCUMENTED = {"requests_per_second": 100.0, "per_key_per_second": 10.0}
#: Budgets so large they never bind: what syncd itself can do.
UNLIMITED = {"requests_per_second": 1e9, "per_key_per_second": 1e9}


def apsis_budget(budget: str) -> dict:
    """Settings of the APSIS emulator (and of syncd's APSIS connection) for a budget name."""
    if budget == "documented":
        return dict(DOCUMENTED)
    if budget == "unlimited":
        return dict(UNLIMITED)
    raise ValueError(f"budget must be documented or unlimited, not {budget!r}")


def destination_config(dst_cls, dst, budget: str) -> dict:
    """syncd's APSIS connection: its client-side budgets follow the emulator's."""
    config = dict(dst_cls.sandbox_config(dst))
    b = apsis_budget(budget)
    config["requests_per_second"] = b["requests_per_second"]
    config["per_profile_per_second"] = b["per_key_per_second"]
    return config


def sync_rules(src_cls, consents: bool = True, page_size: int | None = None) -> dict:
    """The source's sandbox rules; without ``consents`` fields only (no consents, no tags),
    so that each new profile costs exactly one APSIS request."""
    rules = dict(src_cls.sandbox_rules())
    if not consents:
        rules.pop("consents", None)
        rules.pop("selections", None)
    if page_size:
        rules["page_size"] = page_size
    return rules


def emulator_stats(url: str) -> dict:
    return requests.get(f"{url}/_emulator/stats", timeout=10).json()


def requests_between(before: dict, after: dict, status: str | None = None) -> int:
    if status is None:
        return after["requests"] - before["requests"]
    return after["by_status"].get(status, 0) - before["by_status"].get(status, 0)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (user+system) per thread name of a process, from /proc/PID/task (threads of
    one name are summed; numbered names such as ``waitress-3`` are grouped as ``waitress-*``)."""
    import re

    tick = os.sysconf("SC_CLK_TCK")
    names = _python_thread_names(pid)
    out: dict[str, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as fh:
                text = fh.read()
        except OSError:
            continue
        name = names.get(int(tid)) or text[text.index("(") + 1:text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        name = re.sub(r"[-_]\d+(_\d+)?$", "-*", name)
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def _python_thread_names(pid: int) -> dict[int, str]:
    """OS thread id -> Python thread name, from ``py-spy dump --json`` when py-spy is
    installed next to this Python (CPython does not name its OS threads); else empty."""
    import json
    import shutil

    spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
    spy = spy if os.path.exists(spy) else shutil.which("py-spy")
    if not spy:
        return {}
    try:
        out = subprocess.run([spy, "dump", "--json", "--nonblocking", "-p", str(pid)],
                             capture_output=True, timeout=30, check=True).stdout
        return {t["os_thread_id"]: t.get("thread_name") or "?" for t in json.loads(out)
                if t.get("os_thread_id")}
    except (OSError, ValueError, subprocess.SubprocessError, KeyError, TypeError):
        return {}


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Per-thread CPU seconds spent between two :func:`thread_cpu` readings, largest first
    (threads that ended in between are missing: their time is in the process total only)."""
    delta = {k: v - before.get(k, 0.0) for k, v in after.items()}
    return dict(sorted(((k, v) for k, v in delta.items() if v > 0), key=lambda kv: -kv[1]))
