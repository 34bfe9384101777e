"""The key of a Lime person in syncd and in the destination (APSIS' crm-id keyspace).

Lime ids are plain integers, unique only within one Lime instance: person 42 of one
instance and person 42 of another are different people. So a person's key is
``key_prefix`` + its id, the prefix naming the instance:

- ``key_prefix`` set: that (``""``: the plain id, as syncd wrote keys before the option
  existed);
- not set: derived from ``base_url``, the instance's host and application path
  (``https://acme.lime-crm.com/acme-app`` gives ``acme.lime-crm.com-acme-app:``, so person
  42 is ``acme.lime-crm.com-acme-app:42``). It names the instance, not the connection: two
  connections to one instance (or the sandbox's comparison, a connection of its own) give
  a person the same key, a renamed connection keeps its keys.

A person keeps the key it was first written with: a person some integration reading from
this connection holds a link for under its plain id, or under a prefix the connection used
before (each prefix used is remembered in the connection's ledger, ``key_prefixes``), keeps
that key; only persons never written get the current prefix. So an existing deployment
duplicates no profile: its persons stay under their plain ids, new ones are prefixed. The
config check (:meth:`syncd_lime.connector.LimeConnector.key_space`) refuses two connections
to different instances whose prefixes could give one key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from syncd.plugin import Ledger

#: The ledger's name for the prefixes a connection has used (each a reason).
PREFIXES = "key_prefixes"


def instance_of(base_url: str) -> str:
    """The Lime instance ``base_url`` names: host (and port) and application path, lowercase."""
    parts = urlsplit(str(base_url).strip())
    return (parts.netloc + parts.path.rstrip("/")).lower()


def derived_prefix(base_url: str) -> str:
    """The default ``key_prefix``: the instance, with each run of other characters than
    letters, digits and dots as one ``-``, then ``:``."""
    return re.sub(r"[^a-z0-9.]+", "-", instance_of(base_url)).strip("-") + ":"


def prefix_of(opts: Mapping[str, Any]) -> str:
    """The connection's key prefix now (``key_prefix``, else derived from ``base_url``)."""
    explicit = opts.get("key_prefix")
    return str(explicit) if explicit is not None else derived_prefix(opts["base_url"])


class Keys:
    """A connection's keys: ``prefix`` now, and those it used before (from ``ledger``)."""

    def __init__(self, prefix: str, ledger: Ledger):
        self.prefix = prefix
        self.ledger = ledger
        before = set(ledger.counts(PREFIXES)) | {""}  # "": the keys before key_prefix
        before.discard(prefix)
        #: The earlier prefixes, longest first (a key is parsed by the longest that fits).
        self.earlier = sorted(before, key=len, reverse=True)

    def remember(self) -> None:
        """Record the prefix in use (at each start), so that a later one keeps its keys."""
        self.ledger.count(PREFIXES, self.prefix)

    def keys(self, person_ids: Iterable[int]) -> dict[int, str]:
        """``id -> key`` of persons: the key a link was written with, else the current one."""
        ids = list(dict.fromkeys(int(i) for i in person_ids))
        current = {i: f"{self.prefix}{i}" for i in ids}
        if not ids or not self.earlier:
            return current
        candidates = {f"{p}{i}": i for p in self.earlier for i in ids}
        linked = self.ledger.linked([*current.values(), *candidates])
        out = {}
        for i, key in current.items():
            if key not in linked:
                key = next((f"{p}{i}" for p in self.earlier if f"{p}{i}" in linked), key)
            out[i] = key
        return out

    def key(self, person_id: int) -> str:
        return self.keys([person_id])[person_id]

    def person_id(self, key: str) -> int | None:
        """The Lime id a key of this connection names; None for a key it never gives."""
        key = str(key)
        for prefix in sorted({self.prefix, *self.earlier}, key=len, reverse=True):
            rest = key[len(prefix):]
            if key.startswith(prefix) and rest.isdigit():
                return int(rest)
        return None
