"""How a config section is declared: the core's sections and every connector use these.

A connector declares the keys of its ``[connections.NAME]`` section as a tuple of
:class:`Option`. The loader in :mod:`syncd.config` validates a section against them, fills
defaults, resolves secrets and reports every problem with its key and its fix.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Any


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: Marks an option without default: the config must give it.
REQUIRED: Any = _Required()


class Secret:
    """A secret value. Its text never shows in ``repr``/``str``, logs or output."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str = "inline"):
        self._value = value
        #: Where it came from: "inline", "env:NAME", "file:PATH" or "credential:NAME" (safe to
        #: show).
        self.source = source

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret(<{self.source}>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self):  # never pickle the value by accident
        raise TypeError("a Secret cannot be pickled")


@dataclass(frozen=True)
class Option:
    """One key of a config section.

    ``type`` is one of ``str``, ``int``, ``float``, ``bool``, ``list``, ``dict`` or
    :class:`Secret`. A secret may be given inline (a string), as ``{ env = "NAME" }`` or as
    ``{ file = "/path" }``; it reaches the connector as a :class:`Secret`.
    """

    name: str
    type: builtins.type
    default: Any = REQUIRED
    doc: str = ""
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    #: For ``list`` options: the type of each item.
    item_type: builtins.type | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED
