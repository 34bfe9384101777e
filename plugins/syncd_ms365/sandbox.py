"""The sandbox's Outlook link (``syncd sandbox``): identity and Graph emulators, a Tribe
employee who manages a few relationships, and that employee's mailbox linked through the
real device-code flow; the check: Outlook follows Tribe, and an Outlook edit (notified
through the daemon's receiver) flows back to Tribe."""

from __future__ import annotations

import os
from typing import Any

USER = "anna@sandbox.test"
CLIENT = "5a4d6b0e-0000-4000-8000-00000000a365"
MANAGED = 5
ORG = "00000000-0000-4000-8000-000000000001"


class Companion:
    def __init__(self, tribe_emu, tribe_connection: str, tmp: str):
        from syncd_ms365.emulator_graph import GraphEmulator
        from syncd_ms365.emulator_identity import IdentityEmulator

        self.tribe_emu, self.tmp = tribe_emu, tmp
        self.identity = IdentityEmulator(device_interval=0, login_as=USER,
                                         cert_dir=os.path.join(tmp, "ms365-ca"))
        self.identity.add_user(USER)
        self.identity.register_client(CLIENT)
        self.graph = GraphEmulator(identity=self.identity)
        self.identity.start()
        self.graph.start()
        self.options: dict[str, Any] = {
            "kind": "ms365", "authority": self.identity.authority, "client_id": CLIENT,
            "ca_bundle": self.identity.ca_bundle, "graph_url": f"{self.graph.url}/v1.0",
            "tribe_connection": tribe_connection, "poll_interval": 2.0,
            "client_state": "sandbox-client-state-0123456789"}
        self.keys: list[str] = []

    def _tribe(self):
        from syncd_tribe.client import TribeClient
        from syncd_tribe.connector import TribeConnector
        from syncd_tribe.options import resolve_options
        return TribeClient(resolve_options(TribeConnector.sandbox_config(self.tribe_emu)))

    def prepare(self) -> None:
        """Before the daemon starts: the user's employee record, and relationships they
        manage (through Tribe's API)."""
        client = self._tribe()
        try:
            employee = client.create("Relationship_Person_Contact_Employee", {
                "EmailAddress": USER, "Relation": {"ID": ORG},
                "Person": {"FirstName": "Anna", "LastName": "Sandbox"}})["ID"]
            rows = client.query("Relationship_Person_Contact_Standard", select=["ID"],
                                top=MANAGED, orderby="ID")["value"]
            for row in rows:
                client.update("Relationship_Person_Contact_Standard", row["ID"],
                              {"AccountManager": {"ID": employee}})
                self.keys.append(row["ID"])
        finally:
            client.close()

    def stop(self) -> None:
        self.graph.stop()
        self.identity.stop()

    def outlook(self) -> dict[str, dict]:
        from syncd_ms365.options import DEFAULT_PROPERTY
        oid = self.identity.users[USER]
        with self.graph.store.lock:
            return {c["_ext"][DEFAULT_PROPERTY]: dict(c) for c in
                    self.graph.store.mailbox(oid).contacts.values()
                    if c.get("_ext", {}).get(DEFAULT_PROPERTY)}

    def scenario(self, console, daemon, connection: str, wait) -> bool:
        """Link the user (``syncd ms365 authorize``), then check both directions."""
        from syncd_ms365.auth import Accounts
        from syncd_ms365.connector import Ms365Connector

        options = {o.name: o.default for o in Ms365Connector.options}
        options.update({k: v for k, v in self.options.items() if k != "kind"})
        Accounts(connection, options, daemon.config.daemon.state_dir).authorize_device(
            USER, lambda message: None)
        console.print(f"  outlook: {USER} linked (device code); relationships they manage "
                      f"go to their Outlook:")
        if not wait(lambda: set(self.keys) <= set(self.outlook()), 60):
            console.print(f"    [red]only {len(self.outlook())} of {len(self.keys)} contacts "
                          "reached Outlook[/red]")
            return False
        console.print(f"    {len(self.keys)} contacts in Outlook, each with its connector id")
        key = self.keys[0]
        contact = self.outlook()[key]
        self.graph.store.update(self.identity.users[USER], contact["id"],
                                {"jobTitle": "Edited in Outlook"})
        client = self._tribe()
        try:
            back = wait(lambda: client.get("Relationship_Person_Contact_Standard", key)
                        .get("Role") == "Edited in Outlook", 60)
        finally:
            client.close()
        console.print("    an Outlook edit reached Tribe" if back else
                      "    [red]the Outlook edit did not reach Tribe[/red]")
        return back


def companion(sources: dict[str, tuple[Any, str]], tmp: str) -> Companion | None:
    """The sandbox asks each connector for a companion of its sources (``kind -> (emulator,
    connection)``); the Outlook link needs a Tribe source."""
    if "tribe" not in sources:
        return None
    emu, connection = sources["tribe"]
    return Companion(emu, connection, tmp)
