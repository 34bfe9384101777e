"""The daemon of this environment (``syncd run``, a real process) syncs Notebook contacts into
APSIS One through the plugin, by a full sync and by a webhook; the emulators run here.
``syncd.testing``'s ``daemons`` fixture starts it and stops it after the test."""

from __future__ import annotations

import requests
import tomli_w
from syncd_apsis.connector import ApsisConnector
from syncd_apsis.emulator import ApsisEmulator
from syncd_example.emulator import NotebookEmulator

from syncd.testing import free_port, syncd_cli, wait_until

FIRST = "com.apsis1.attributes.firstname"


def test_the_daemon_syncs_notebook_into_apsis(daemons, tmp_path):
    receiver = free_port()
    with NotebookEmulator() as notebook, ApsisEmulator(seed=1) as apsis:
        notebook.seed(12)
        source = {"kind": "notebook", "base_url": notebook.url, "api_key": notebook.api_key,
                  "webhook_secret": notebook.webhook_secret, "requests_per_second": 0.0}
        destination = {**ApsisConnector.sandbox_config(apsis), "requests_per_second": 1000.0}
        config = tmp_path / "syncd.toml"
        config.write_bytes(tomli_w.dumps({
            "daemon": {"state_dir": "state", "log_format": "json"},
            "receiver": {"host": "127.0.0.1", "port": receiver,
                         "public_url": f"http://127.0.0.1:{receiver}"},
            "admin": {"host": "127.0.0.1", "port": free_port()},
            "connections": {"notebook": source, "apsis": destination},
            "integrations": {"nb-apsis": {"source": "notebook", "destination": "apsis",
                                          "fields": {"name": "firstname"}}},
        }).encode())
        checked = syncd_cli("check-config", "-c", str(config))
        assert checked.returncode == 0, checked.stdout + checked.stderr
        daemon = daemons(config)
        daemon.start().wait_ready(60)

        assert daemon.sync("nb-apsis")["status"] == "completed"
        held = apsis.snapshot()
        assert sorted(held) == sorted(notebook.contacts)
        first = "nb-0003"
        assert held[first][FIRST] == notebook.contacts[first]["name"]

        notebook.contacts[first]["name"] = "Renamed"  # then Notebook's webhook
        headers, body = notebook.delivery(first)
        answer = requests.post(f"{daemon.url}/webhooks/notebook", data=body, headers=headers,
                               timeout=10)
        assert answer.status_code in (200, 202, 204)
        wait_until(lambda: apsis.snapshot()[first].get(FIRST) == "Renamed", 30,
                   "the webhook's change in APSIS")
        assert daemon.stop() == 0, daemon.log_tail()
