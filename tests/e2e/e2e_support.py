"""Helpers of the end-to-end tests: the real ``syncd`` as a process against the emulators.

The emulators run in the test process (their Python helpers stay usable); the daemon and the
CLI run as subprocesses with a config written by the test, through the shared launcher
(:class:`syncd.testing.DaemonProcess`, the ``daemons`` fixture, :func:`syncd.testing.syncd_cli`).
Every wait polls with a deadline; every process is killed if it does not stop in time.
"""

from __future__ import annotations

import os
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
from syncd.testing import free_port as free_port
from syncd.testing import subprocess_env as subprocess_env
from syncd.testing import syncd_cli as syncd_cli
from syncd.testing import wait_run as wait_run
from syncd.testing import wait_until as wait_for

#: The integration's name: the one ``syncd.app.sandbox.compare`` reads the rules of.
NAME = INTEGRATION

#: Distinctive secrets, so that a leak into any output is unmistakable.
TRIBE_CLIENT_SECRET = "e2e-tribe-client-s3cret-5b7e1c"
APSIS_CLIENT_SECRET = "e2e-apsis-client-s3cret-9d04af"
WEBHOOK_SECRET = "e2e-webhook-s3cret-a61f38"
SECRETS = (TRIBE_CLIENT_SECRET, APSIS_CLIENT_SECRET, WEBHOOK_SECRET)


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


# -- what the tests ask of a running daemon -----------------------------------------------------


def integration_status(client: AdminClient) -> dict[str, Any]:
    return client.status()["integrations"][NAME]


def full_sync(client: AdminClient, timeout: float = 60.0) -> dict[str, Any]:
    run_id = client.start_sync(NAME, confirm=True)["run_id"]
    return wait_run(client, run_id, timeout)


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
