"""Run by test_link_crash.py as its own process: the initial sync of one user, to be killed
with SIGKILL while a Graph write is in flight."""

from __future__ import annotations

import json
import pathlib
import sys

from syncd_ms365.connector import Ms365Connector
from syncd_ms365.link import UserLink
from syncd_ms365.pairs import Pairs
from syncd_tribe.client import TribeClient
from syncd_tribe.options import resolve_options
from syncd_tribe.people import TribePeople


def main() -> None:
    spec = json.loads(sys.argv[1])
    state = pathlib.Path(spec["state_dir"])
    connector = Ms365Connector("outlook", spec["ms365"])
    connector.state_dir = str(state)
    connector.start()
    client = TribeClient(resolve_options(spec["tribe"]))
    people = TribePeople(client, "Relation_Person", "Relationship_Person_Contact_Standard")
    link = UserLink(spec["user"], spec["employee"], people, connector.mailbox,
                    Pairs(str(state / "pairs.sqlite3")))
    print("started", flush=True)
    link.initial_sync()
    print("finished", flush=True)


if __name__ == "__main__":
    main()
