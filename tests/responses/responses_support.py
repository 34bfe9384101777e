"""Helpers of the response-data and task tests: the Tribe and APSIS emulators on loopback,
the real daemon in-process (receiver, admin endpoint, actors, SQLite file; ``syncd.testing``'s
``inprocess_daemons``) with a full sync done, so that APSIS profiles carry their Tribe ids."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import tomli_w
from syncd_apsis.connector import ApsisConnector
from syncd_apsis.emulator import ApsisEmulator
from syncd_tribe.connector import TribeConnector
from syncd_tribe.emulator import TribeEmulator

from syncd.app.admin import AdminClient
from syncd.app.daemon import Daemon
from syncd.testing import wait_for

NAME = "resp"
TASK_SECRET = "task-s3cret-0a9f7c"
ALL_TYPES = ["email_sent", "email_delivered", "email_bounced", "email_opened",
             "email_clicked", "email_unsubscribed", "sms_delivered", "sms_undelivered",
             "sms_opened", "sms_clicked"]


@dataclass
class World:
    tribe: TribeEmulator
    apsis: ApsisEmulator
    daemon: Daemon
    admin: AdminClient
    synced: list[str]  # Tribe person ids with an APSIS profile

    def coordinator(self):
        return self.daemon.coordinators[NAME].ref.proxy()

    def run_responses(self, timeout: float = 30.0) -> dict[str, Any]:
        """Start a response-data run and wait for it to end; returns the run (with counts)."""
        store = self.daemon.store
        before = (store.latest_run(NAME, "responses") or {}).get("id", 0)
        self.coordinator().run_job("responses", {}).get(timeout=10)
        assert wait_for(lambda: (r := store.latest_run(NAME, "responses")) is not None
                        and r["id"] > before and r["status"] != "running", timeout)
        run = store.latest_run(NAME, "responses")
        return self.admin.run(run["id"])

    @property
    def receiver(self) -> str:
        return self.daemon.receiver.url


def config(tmp_path, tribe, apsis, integration: dict[str, Any] | None = None
           ) -> dict[str, Any]:
    source = TribeConnector.sandbox_config(tribe)
    destination = ApsisConnector.sandbox_config(apsis)
    destination.update({"requests_per_second": 1000.0, "export_poll_interval": 0.05})
    rules = {"source": "tribe", "destination": "apsis", "page_size": 100,
             **TribeConnector.sandbox_rules(), "response_events": ALL_TYPES,
             "responses_rate": 0.0, "responses_batch": 7, "tasks_secret": TASK_SECRET,
             "task_assignee_rule": "account_manager", "task_fallback_employee": "",
             **(integration or {})}
    return {"daemon": {"state_dir": str(tmp_path / "state"), "stop_timeout": 5.0},
            "receiver": {"port": 0}, "admin": {"port": 0},
            "connections": {"tribe": source, "apsis": destination},
            "integrations": {NAME: rules}}


def start_world(tmp_path, daemons, integration: dict[str, Any] | None = None,
                persons: int = 40, apsis_kwargs: dict[str, Any] | None = None,
                emulators: list | None = None):
    """The emulators (appended to ``emulators`` as they start) and the daemon (made by
    ``daemons``, ``syncd.testing``'s ``inprocess_daemons``), a full sync done: the World."""
    tribe = TribeEmulator(seed=3, threads=8)
    tribe.seed(persons, seed=3)
    apsis = ApsisEmulator(seed=4, threads=8, **(apsis_kwargs or {}))
    apsis.configure_exports(export_delay=0.05, duplicate_rate=0.0, zero_time_rate=0.0)
    for emu in (tribe, apsis):
        emu.start()
        (emulators if emulators is not None else []).append(emu)
    path = tmp_path / "syncd.toml"
    path.write_bytes(tomli_w.dumps(config(tmp_path, tribe, apsis, integration)).encode())
    running = daemons(path).start()
    daemon, admin = running.daemon, running.client
    run_id = admin.start_sync(NAME)["run_id"]
    assert wait_for(lambda: admin.run(run_id)["status"] != "running", 60)
    assert admin.run(run_id)["status"] == "completed", admin.run(run_id)
    from syncd_apsis.audience import CRM_ID

    synced = [p["ID"] for p in tribe.persons() if apsis.audience.find(CRM_ID, p["ID"])]
    assert len(synced) >= 5
    return World(tribe, apsis, daemon, admin, synced)
