"""Helpers of the daemon tests: the config of a daemon on the memory connector (one world as
source ``crm`` and destination ``mkt``, integration ``main``) and its signed webhooks. The
``running`` and ``memory_daemon`` fixtures (conftest.py) start it in-process."""

from __future__ import annotations

import threading
from functools import partial

import requests

from syncd import testing
from syncd.config.schema import Option
from syncd.testing import MemoryConnector, memory_webhook

wait_for = partial(testing.wait_for, timeout=15.0)

SECRET = "memory-webhook-secret"

CONSENT = """
[[integrations.main.consents]]
label = "{label}"
topic = "news"
channel = "email"
"""


def write_config(path, world, fields='FirstName = "firstname"', extra="", settings="",
                 crm_kind="memory", crm_options="", mkt_kind="memory", admin=""):
    path.write_text(f"""
[daemon]
state_dir = "state"
stop_timeout = 5.0

[receiver]
port = 0

[admin]
port = 0
{admin}
[connections.crm]
kind = "{crm_kind}"
world = "{world}"
webhook_secret = "{SECRET}"
{crm_options}
[connections.mkt]
kind = "{mkt_kind}"
world = "{world}"

[integrations.main]
source = "crm"
destination = "mkt"
page_size = 7
{settings}
[integrations.main.fields]
{fields}
{extra}
""")


def post_webhook(daemon, ids, secret=SECRET):
    """A signed webhook naming ``ids`` to the ``crm`` connection of ``daemon``."""
    body, headers = memory_webhook(ids, secret)
    return requests.post(f"{daemon.receiver.url}/webhooks/crm", data=body, headers=headers,
                         timeout=5)


GATE = threading.Event()  # a held connection start waits for it
HELD = threading.Event()  # set when a start is being held


class GatedConnector(MemoryConnector):
    """The memory connector whose start can hang (``start = "hold"``) or fail."""

    kind = "gated"
    options = (*MemoryConnector.options,
               Option("start", str, "ok", "ok, hold (until GATE) or fail",
                      choices=("ok", "hold", "fail")))

    def start(self) -> None:
        if self.config["start"] == "fail":
            raise RuntimeError("the partner refused the connection")
        if self.config["start"] == "hold":
            HELD.set()
            GATE.wait(60)


def write_gated_config(path, world: str, start: str = "ok") -> None:
    """The config with a ``gated`` source whose start is ``start``."""
    write_config(path, world, crm_kind="gated", crm_options=f'start = "{start}"')


def receive_until(sock, wanted: str) -> list[str]:
    """sd_notify messages read from ``sock`` up to the first that starts with ``wanted``."""
    seen = []
    while True:
        message = sock.recv(4096).decode()
        seen.append(message)
        if message.startswith(wanted):
            return seen
