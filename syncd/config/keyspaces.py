"""Profile keys that could collide: two source connections into one destination whose
records' ids are integers unique only within their own partner instance (``key_space``, see
:meth:`syncd.connectors.connector.Connector.key_space`) and whose key prefixes could give
one key for records of two instances (person 42 of one would become person 42 of the
other, and an opt-out of one would be written back to the other).

Two prefixes could give one key when they are equal, or when the longer is the shorter and
digits (``"lime"`` and ``"lime1"``: ``lime1`` + ``2`` is ``lime`` + ``12``; ``""`` and
``"a:"`` cannot: no id starts with ``a:``); two connections to the same instance may share a prefix (their
records are the same records). Every integration counts, enabled or not: a disabled one's
profiles are still in the destination.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from syncd.config.problems import Problems
from syncd.config.sections import toml_key


def could_collide(a: str, b: str) -> bool:
    """True when prefix ``a`` and an integer id could give the key of prefix ``b`` and
    another."""
    short, long = sorted((a, b), key=len)
    rest = long[len(short):]
    return long.startswith(short) and (rest == "" or rest.isdigit())


def key_problems(config: Any, classes: Mapping[str, Any], problems: Problems) -> None:
    """Add a problem for each pair of source connections whose keys could collide in one
    destination, naming both, the destination and the fix."""
    into: dict[str, dict[str, list[str]]] = {}  # destination -> source -> integrations
    for name, integration in config.integrations.items():
        into.setdefault(integration.destination, {}).setdefault(
            integration.source, []).append(name)
    for destination, sources in into.items():
        spaces: list[tuple[str, str, str]] = []  # (connection, prefix, instance)
        for source in sorted(sources):
            key_space = getattr(classes.get(source), "key_space", None)
            space = None if key_space is None else key_space(
                source, config.connections[source].options)
            if space is not None:
                spaces.append((source, *space))
        for i, (first, p1, inst1) in enumerate(spaces):
            for second, p2, inst2 in spaces[i + 1:]:
                if inst1 == inst2 or not could_collide(p1, p2):
                    continue
                problems.add(
                    f"connections.{toml_key(second)}.key_prefix",
                    f"the profile keys of connections {first} (key prefix {p1!r}, {inst1}) and "
                    f"{second} (key prefix {p2!r}, {inst2}) could collide in destination "
                    f"{destination} (integrations {', '.join(sources[first])} and "
                    f"{', '.join(sources[second])}): a record of one would update the other's "
                    "profile with the same id, and an opt-out would be written back to both",
                    f"give each connection its own key_prefix (none another's plus digits): e.g. "
                    f'leave key_prefix unset in [connections.{toml_key(first)}] and '
                    f'[connections.{toml_key(second)}] (each is then derived from its '
                    f'instance) or set key_prefix = "{second}:" in '
                    f"[connections.{toml_key(second)}]; records synced before keep the keys "
                    "they were written with, so no profile is duplicated")
