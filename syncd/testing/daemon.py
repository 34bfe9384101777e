"""The daemon as a process, for end-to-end tests: syncd's own and a connector plugin's.

- :class:`DaemonProcess` runs ``syncd run -c CONFIG`` (``python -m syncd.app.cli`` of this
  interpreter, or the ``command`` given, e.g. the ``syncd`` of another virtual environment)
  with its output in a log file; :meth:`~DaemonProcess.wait_ready` polls until the admin
  endpoint answers (or ``/readyz`` is 200), never sleeps a fixed time; ``client`` talks to
  the admin API; :meth:`~ChildProcess.stop` sends SIGTERM (SIGKILL after a deadline),
  :meth:`~ChildProcess.kill` SIGKILL at once.
- :class:`ChildProcess`: the same life cycle and log for any other program a test kills.
- the ``daemons`` fixture: ``daemons(config_path, ...)`` makes a (not yet started)
  :class:`DaemonProcess`; every one is stopped at teardown, whatever the outcome, and the
  report of a failed test carries each one's log tail (:func:`daemon_processes` does the
  same for a block, in a fixture of a wider scope). A process still running when pytest
  ends is killed then: none outlives the test session.
- :func:`syncd_cli` runs another ``syncd`` command to completion; :func:`subprocess_env` is
  the environment of both (no inherited ``SYNCD_*``, systemd or proxy variables);
  :func:`plugin_path` makes a plugin that is not installed visible to them.
"""

from __future__ import annotations

import json
import os
import signal as signals
import subprocess
import sys
import tomllib
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import pytest
import requests

from syncd.app.admin import AdminClient
from syncd.exceptions import AdminError

#: The daemons the ``daemons`` fixture made for a test (their logs go into its report).
DAEMONS = pytest.StashKey[list["DaemonProcess"]]()
#: Every child process started and not yet stopped: killed when pytest ends.
_LIVE: set[ChildProcess] = set()

SYNCD = (sys.executable, "-m", "syncd.app.cli")


def subprocess_env(pythonpath: str | None = None,
                   extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without ``SYNCD_*``, systemd's and proxy variables (the
    tests reach loopback only), unbuffered, wide enough for rich's tables; ``pythonpath`` is
    put in front of ``PYTHONPATH``; ``extra`` is added last."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SYNCD_", "NOTIFY_", "WATCHDOG_")) and "proxy" not in k.lower()
           and k != "JOURNAL_STREAM"}
    env.update({"NO_PROXY": "*", "COLUMNS": "250", "PYTHONUNBUFFERED": "1"})
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH")) if p)
    env.update(extra or {})
    return env


def syncd_cli(*args: str, timeout: float = 60.0, pythonpath: str | None = None,
              command: Sequence[str] = SYNCD, cwd: str | None = None
              ) -> subprocess.CompletedProcess:
    """Run ``syncd ARGS`` to completion (killed after ``timeout``), output captured."""
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=timeout,
                          env=subprocess_env(pythonpath), stdin=subprocess.DEVNULL, cwd=cwd)


def plugin_path(root: str | os.PathLike[str], distribution: str,
                entry_points: Mapping[str, str], modules: Mapping[str, str] | None = None) -> str:
    """A directory holding a ``syncd`` plugin distribution that is not installed: its
    ``entry_points`` (name -> module) and the ``modules`` (file name -> source) given; put it
    on a daemon's or a command's ``pythonpath`` and ``syncd`` loads the plugin. Returns it."""
    site = Path(root) / f"{distribution}-site"
    info = site / f"{distribution.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\n"
                                   "Version: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[syncd]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    for name, source in (modules or {}).items():
        (site / name).write_text(source)
    return str(site)


class ChildProcess:
    """A program run by a test, its stdout and stderr appended to ``log_path``."""

    def __init__(self, argv: Sequence[str], log_path: str | os.PathLike[str], *,
                 pythonpath: str | None = None, env: Mapping[str, str] | None = None,
                 cwd: str | os.PathLike[str] | None = None):
        self.argv = list(argv)
        self.log_path = Path(log_path)
        self.cwd = cwd
        self.env = subprocess_env(pythonpath, env)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    # life cycle

    def start(self) -> Self:
        assert not self.running(), "already running"
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.env, cwd=self.cwd)
        _LIVE.add(self)
        return self

    @property
    def pid(self) -> int:
        return self._started().pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        assert self.running(), "the process is not running"
        self._started().send_signal(sig)

    def kill(self) -> None:
        """SIGKILL, at once; waits until the process is gone."""
        proc = self._started()
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        _LIVE.discard(self)

    def wait(self, timeout: float) -> int:
        """Until it exits (``subprocess.TimeoutExpired`` after ``timeout``): its exit code."""
        return self._started().wait(timeout)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit within ``timeout``; the exit code (negative:
        the signal that ended it), None if it was never started."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signals.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        _LIVE.discard(self)
        return self.proc.returncode

    def _started(self) -> subprocess.Popen[bytes]:
        assert self.proc is not None, "the process was not started"
        return self.proc

    # the log

    def log_text(self, since_start: bool = False) -> str:
        """The log; only what the last start wrote with ``since_start``."""
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


class DaemonProcess(ChildProcess):
    """``syncd run -c CONFIG``; the config must name ``[daemon] state_dir`` and a real
    ``[admin] port`` (:func:`syncd.testing.free_port`), which the test reaches it by."""

    def __init__(self, config_path: str | os.PathLike[str],
                 log_path: str | os.PathLike[str] | None = None, *,
                 command: Sequence[str] = SYNCD, pythonpath: str | None = None,
                 env: Mapping[str, str] | None = None):
        self.config_path = Path(config_path)
        base = self.config_path.resolve().parent
        with open(self.config_path, "rb") as fh:
            raw = tomllib.load(fh)
        daemon, admin = raw.get("daemon", {}), raw.get("admin", {})
        if "state_dir" not in daemon or not admin.get("port"):
            raise ValueError(f"{config_path}: a daemon under test needs [daemon] state_dir "
                             "and a real [admin] port (syncd.testing.free_port())")
        self.state_dir = str(base / daemon["state_dir"])
        self.admin_host = admin.get("host", "127.0.0.1")
        self.admin_port = int(admin["port"])
        self.token_file = str(base / admin.get("token_file",
                                               os.path.join(self.state_dir, "admin.token")))
        self.receiver_port = int(raw.get("receiver", {}).get("port", 0))
        super().__init__([*command, "run", "-c", str(self.config_path)],
                         log_path or base / "syncd.log", pythonpath=pythonpath, env=env,
                         cwd=base)
        self._client: AdminClient | None = None

    @property
    def url(self) -> str:
        """The receiver's base URL (webhooks are posted to ``{url}/webhooks/<connection>``)."""
        return f"http://127.0.0.1:{self.receiver_port}"

    @property
    def db_path(self) -> str:
        return os.path.join(self.state_dir, "syncd.db")

    @property
    def client(self) -> AdminClient:
        """A client of the admin API (the token is read when first asked for)."""
        if self._client is None:
            self._client = self._admin_client()
            if self._client is None:
                raise AssertionError("the daemon has written no admin token yet")
        return self._client

    def start(self) -> Self:
        self._client = None
        return super().start()

    def wait_ready(self, timeout: float = 30.0, *, readyz: bool = False) -> AdminClient:
        """Until the admin endpoint answers ``status`` (the daemon is fully started) and, with
        ``readyz``, ``/readyz`` answers 200; fails with the log tail if the daemon exits or
        the deadline passes."""
        from syncd.testing import wait_until

        def ready() -> AdminClient | None:
            proc = self._started()
            if proc.poll() is not None:
                raise AssertionError(f"the daemon exited with {proc.returncode}:\n"
                                     f"{self.log_tail()}")
            client = self._admin_client()
            if client is None:
                return None
            try:
                client.status()
                if readyz and requests.get(self._admin_url("/readyz"), timeout=10).status_code \
                        != 200:
                    return None
            except (AdminError, requests.RequestException):
                return None
            return client

        try:
            self._client = wait_until(ready, timeout, "the daemon's admin endpoint", 0.05)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log_tail()}") from None
        return self._client

    def sync(self, integration: str, timeout: float = 60.0) -> dict[str, Any]:
        """A confirmed full sync of ``integration``, to its end: the run."""
        run_id = self.client.start_sync(integration, confirm=True)["run_id"]
        return wait_run(self.client, run_id, timeout)

    def _admin_url(self, path: str) -> str:
        return f"http://{self.admin_host}:{self.admin_port}{path}"

    def _admin_client(self) -> AdminClient | None:
        try:
            with open(self.token_file) as fh:
                token = fh.read().strip()
        except FileNotFoundError:
            return None
        return AdminClient(self.admin_host, self.admin_port, token, timeout=20.0) if token \
            else None


def wait_run(client: AdminClient, run_id: int, timeout: float = 60.0) -> dict[str, Any]:
    """Until run ``run_id`` is no longer running: the run."""
    from syncd.testing import wait_until

    def ended() -> dict[str, Any] | None:
        run = client.run(run_id)
        return run if run["status"] != "running" else None

    return wait_until(ended, timeout, f"run #{run_id} to end", interval=0.1)


@contextmanager
def daemon_processes(made: list[DaemonProcess] | None = None
                     ) -> Iterator[Callable[..., DaemonProcess]]:
    """``with daemon_processes() as make:`` -> ``make(config_path, log_path=None, command=...,
    pythonpath=None, env=None)``, a :class:`DaemonProcess` not yet started; every one made is
    stopped (SIGTERM, then SIGKILL) when the block ends, however it ends. For fixtures of a
    wider scope than one test; a test takes the ``daemons`` fixture."""
    made = [] if made is None else made

    def make(config_path: str | os.PathLike[str], log_path: str | os.PathLike[str] | None = None,
             **options: Any) -> DaemonProcess:
        daemon = DaemonProcess(config_path, log_path, **options)
        made.append(daemon)
        return daemon

    try:
        yield make
    finally:
        for daemon in made:
            daemon.stop(timeout=15)


@pytest.fixture
def daemons(request: pytest.FixtureRequest) -> Iterator[Callable[..., DaemonProcess]]:
    """``daemons(config_path, log_path=None, command=..., pythonpath=None, env=None)`` -> a
    :class:`DaemonProcess`, not yet started; all are stopped (SIGTERM, then SIGKILL) at the
    end of the test, and a failed test's report shows their logs."""
    with daemon_processes(request.node.stash.setdefault(DAEMONS, [])) as make:
        yield make


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, Any, Any]:
    report: Any = yield
    if report.failed:
        for daemon in item.stash.get(DAEMONS, []):
            report.sections.append((f"syncd daemon log ({daemon.log_path})",
                                    daemon.log_tail(80)))
    return report


def pytest_unconfigure(config: pytest.Config) -> None:
    """Kill what a test left running (a fixture that did not stop its process)."""
    for child in list(_LIVE):
        if child.running():
            child.kill()
