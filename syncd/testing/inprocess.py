"""The daemon in the test's own process, on a thread: real receiver, admin endpoint, actors and
SQLite file, no signal handlers, logging left as the test set it. Faster than a process, and
the test reaches its objects (``daemon.store``, ``daemon.control``) and a memory connector's
world; :mod:`syncd.testing.daemon` runs it as a process instead.

- :class:`InProcessDaemon`: ``InProcessDaemon(config_path, registry).start()`` waits until
  the daemon is started (failing if it stops first); ``client`` talks to its admin API;
  :meth:`~InProcessDaemon.post` sends a webhook to its receiver; ``stop()`` stops it and fails
  if its thread outlives the deadline.
- the ``inprocess_daemons`` fixture: ``inprocess_daemons(config_path, registry=None)`` -> an
  :class:`InProcessDaemon`, not yet started; every one is stopped after the test.
- :func:`memory_webhook`: the body and headers of a memory connector's signed webhook.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Self

import pytest
import requests

from syncd.app.admin import AdminClient
from syncd.connectors import plugins
from syncd.testing.memory import sign


def memory_webhook(ids: Iterable[str], secret: str) -> tuple[bytes, dict[str, str]]:
    """A webhook of the memory connector naming ``ids``, signed with ``secret``."""
    body = json.dumps({"ids": list(ids)}).encode()
    return body, {"X-Memory-Signature": sign(secret, body)}


class InProcessDaemon:
    """:class:`syncd.app.daemon.Daemon` on ``config_path`` with ``registry`` (the installed
    plugins when None; :func:`syncd.testing.memory_registry` adds the memory connector)."""

    def __init__(self, config_path: str | os.PathLike[str],
                 registry: plugins.Registry | None = None, *, ask_timeout: float | None = None):
        from syncd.app.daemon import Daemon  # on use: the pytest plugin stays light to load

        self.config_path = Path(config_path)
        self.daemon = Daemon(str(self.config_path), registry=registry or plugins.load(),
                             install_signals=False, configure_logging=False)
        if ask_timeout is not None:
            self.daemon.ask_timeout = ask_timeout
        self.thread = threading.Thread(target=self.daemon.serve, daemon=True,
                                       name="daemon-under-test")
        self.session = requests.Session()
        self.session.trust_env = False  # loopback only: no proxy
        self._client: AdminClient | None = None

    def start(self, timeout: float = 20.0) -> Self:
        """Until the daemon is started; fails if it stops first or ``timeout`` passes."""
        from syncd.testing import wait_for

        self.thread.start()
        started, stopped = self.daemon.started, self.daemon.stopped
        if not wait_for(lambda: started.is_set() or stopped.is_set(), timeout) \
                or not started.is_set():
            self.stop()
            raise AssertionError("the daemon stopped before it started" if stopped.is_set()
                                 else f"the daemon did not start within {timeout:.0f} s")
        return self

    def running(self) -> bool:
        return self.thread.is_alive() and not self.daemon.stopped.is_set()

    @property
    def client(self) -> AdminClient:
        """A client of its admin API (on the port it listens on, with its token)."""
        if self._client is None:
            assert self.daemon.admin is not None and self.daemon.admin_token is not None
            self._client = AdminClient("127.0.0.1", self.daemon.admin.port,
                                       self.daemon.admin_token)
        return self._client

    @property
    def url(self) -> str:
        """The receiver's base URL."""
        assert self.daemon.receiver is not None, "the daemon is not started"
        return str(self.daemon.receiver.url)

    @property
    def state_dir(self) -> str:
        assert self.daemon.config is not None
        return str(self.daemon.config.daemon.state_dir)

    @property
    def db_path(self) -> str:
        return os.path.join(self.state_dir, "syncd.db")

    def post(self, connection: str, body: bytes, headers: Mapping[str, str],
             timeout: float = 10.0) -> requests.Response:
        """POST a webhook to ``/webhooks/<connection>``."""
        return self.session.post(f"{self.url}/webhooks/{connection}", data=body,
                                 headers=dict(headers), timeout=timeout)

    def stop(self, timeout: float = 20.0) -> None:
        self.session.close()
        if self._client is not None:
            self._client.session.close()
        self.daemon.request_stop()
        if self.thread.ident is not None:
            self.thread.join(timeout)
            assert not self.thread.is_alive(), "the daemon did not stop"


@pytest.fixture
def inprocess_daemons() -> Iterator[Callable[..., InProcessDaemon]]:
    """``inprocess_daemons(config_path, registry=None, ask_timeout=None)`` -> an
    :class:`InProcessDaemon`, not yet started; all are stopped after the test."""
    made: list[InProcessDaemon] = []

    def make(config_path: str | os.PathLike[str], registry: plugins.Registry | None = None,
             **options: Any) -> InProcessDaemon:
        made.append(InProcessDaemon(config_path, registry, **options))
        return made[-1]

    yield make
    failed = []
    for daemon in made:
        try:
            daemon.stop()
        except AssertionError as exc:  # stop the others all the same
            failed.append(exc)
    if failed:
        raise failed[0]
