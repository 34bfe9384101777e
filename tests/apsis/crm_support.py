"""The emulators of the tests that sync a CRM (Tribe or Lime) into APSIS One, set up the same
way in each of them: started, and stopped after (the actors first, then the emulators)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pykka
from syncd_apsis.emulator import ApsisEmulator
from syncd_lime.emulator import LimeEmulator
from syncd_tribe.emulator import TribeEmulator

#: each CRM emulator's class and seed
CRMS: dict[str, tuple[type[TribeEmulator] | type[LimeEmulator], int]] = {
    "tribe": (TribeEmulator, 1), "lime": (LimeEmulator, 2)}


@contextmanager
def crm_emulator(name: str) -> Iterator[Any]:
    """A started Tribe or Lime emulator seeded with 20 contacts, each webhook delivered once."""
    cls, seed = CRMS[name]
    emu = cls(seed=seed, delivery_attempts=1)
    emu.seed(20, seed=seed)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@contextmanager
def apsis_emulator(*, exports: bool = False, **options: Any) -> Iterator[ApsisEmulator]:
    """A started APSIS emulator (``options`` as ApsisEmulator takes them); ``exports``: its
    exports are ready at once. Every actor is stopped before it is."""
    emu = ApsisEmulator(**options).start()
    if exports:
        emu.configure_exports(export_delay=0)
    try:
        yield emu
    finally:
        pykka.ActorRegistry.stop_all(block=True, timeout=10)  # before the emulators go
        emu.stop()
