"""Initial sync of one linked user's Outlook address book: ``--contacts`` Tribe contacts the
user manages go to Outlook through the Graph emulator's documented limits (apis.md 4.6: 4
concurrent requests and 10,000 requests per 10 minutes per mailbox, per-item 429s in
``$batch``), with the real MSAL code against the identity emulator.

    python -m bench ms365 [--contacts 5000]

Goals: every contact created once; 0 requests sent before a Retry-After ran out; at most 4
requests in flight per mailbox; at most 10,000 Graph requests (counting each request of a
batch) for the whole initial sync, so it fits one 10-minute window.
"""

from __future__ import annotations

import argparse
import pathlib
import tempfile
import time
import uuid


def _seed(tribe, employee: str, count: int) -> None:
    org = "00000000-0000-4000-8000-000000000001"
    for i in range(count):
        person = tribe.store.put("Relation_Person", {
            "ID": str(uuid.UUID(int=10**12 + i)), "FirstName": f"First{i}",
            "LastName": f"Last{i}", "Initials": "X."})
        tribe.store.put("Relationship_Person_Contact_Standard", {
            "ID": str(uuid.UUID(int=2 * 10**12 + i)), "EmailAddress": f"c{i}@acme.example",
            "PhoneNumber": f"+31 20 {i:07d}", "Role": "Buyer", "IsFormer": False},
            {"Person": person["ID"], "Relation": org, "AccountManager": employee})


def main(argv=None) -> dict:
    from syncd_ms365.connector import Ms365Connector
    from syncd_ms365.emulator_graph import GraphEmulator
    from syncd_ms365.emulator_identity import IdentityEmulator
    from syncd_ms365.link import UserLink
    from syncd_ms365.pairs import Pairs
    from syncd_ms365.rounds import Round
    from syncd_tribe.client import TribeClient
    from syncd_tribe.connector import TribeConnector
    from syncd_tribe.emulator import TribeEmulator
    from syncd_tribe.options import resolve_options
    from syncd_tribe.people import TribePeople

    from syncd.engine.linkops import LinkRegistry, Links
    from syncd.engine.store import Store

    parser = argparse.ArgumentParser(prog="python -m bench ms365")
    parser.add_argument("--contacts", type=int, default=5000)
    args = parser.parse_args(argv)
    user, client_id = "anna@contoso.example", "bench-client"
    state = pathlib.Path(tempfile.mkdtemp(prefix="syncd-bench-ms365-"))
    identity = IdentityEmulator(device_interval=0, login_as=user, cert_dir=str(state / "ca"))
    identity.add_user(user)
    identity.register_client(client_id)
    tribe = TribeEmulator(seed=1)
    with identity, tribe, GraphEmulator(identity=identity) as graph:
        graph.retry_after_grace = 0.05
        tribe_client = TribeClient(resolve_options(TribeConnector.sandbox_config(tribe)))
        employee = tribe_client.create("Relationship_Person_Contact_Employee", {
            "EmailAddress": user, "Relation": {"ID": "00000000-0000-4000-8000-000000000001"},
            "Person": {"LastName": "Anna"}})["ID"]
        _seed(tribe, employee, args.contacts)
        options = {o.name: o.default for o in Ms365Connector.options}
        options.update(authority=identity.authority, client_id=client_id,
                       ca_bundle=identity.ca_bundle, graph_url=f"{graph.url}/v1.0")
        connector = Ms365Connector("outlook", options)
        connector.state_dir = str(state)
        connector.start()
        connector.accounts.authorize_device(user, lambda message: None)
        people = TribePeople(tribe_client, "Relation_Person",
                             "Relationship_Person_Contact_Standard")
        link = UserLink(user, employee, people, connector.mailbox,
                        Pairs(str(state / "pairs.sqlite3")))
        # as the daemon runs it: a round with its run, guard, fail-fast and journal
        store = Store(str(state / "syncd.db"))
        links = Links(LinkRegistry(store), "outlook")
        graph.reset_stats()
        spent_before = graph.spent_total
        started = time.monotonic()
        run = links.run(user, "initial_sync")
        link.begin(Round(user, links.name(user), run, 20, 0.1))
        with run.recording():
            link.initial_sync()
            link.commit()
        run.finish()
        seconds = time.monotonic() - started
        journaled = store._read("SELECT count(*) FROM journal")[0][0]
        store.close()
        stats = graph.stats()
        created = len(graph.store.mailbox(identity.users[user]).contacts)
        graph_requests = graph.spent_total - spent_before  # each request of a batch counts
        connector.stop()
        tribe_client.close()
    violations = stats["retry_after_violations"]
    table = [
        ("ms365", "contacts created", created, f"= {args.contacts}", created == args.contacts),
        ("ms365", "initial sync (s)", f"{seconds:.1f}", "-", None),
        ("ms365", "contacts/s", f"{created / seconds:.0f}", "-", None),
        ("ms365", "Retry-After violations", violations, "0", violations == 0),
        ("ms365", "max in flight per mailbox", graph.max_inflight, "<= 4",
         graph.max_inflight <= 4),
        ("ms365", "Graph requests (batched counted)", graph_requests, "<= 10000",
         graph_requests <= 10000),
        ("ms365", "HTTP requests / 429 answers", f"{stats['requests']} / "
         f"{stats['by_status'].get('429', 0)}", "-", None),
        ("ms365", "journal entries (syncd explain)", journaled, f"= {args.contacts}",
         journaled == args.contacts),
        ("ms365", "per-item 429 in batches", link.mailbox.graph.counts["throttled"], "-",
         None),
    ]
    return {"table": table, "seconds": seconds, "created": created}
