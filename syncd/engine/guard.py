"""The stop-and-confirm guard of one integration, an object the coordinator actor holds
(``coordinator.gate``): every write path (real-time events, daily creation, overview imports,
full syncs and their resumes, the write-back of destination opt-outs to the source) passes
its consent flips and deletes through :meth:`Guard.guarded` before writing.

The guard counts them per integration over ``confirm_window`` in the state store, so the
count survives runs, resumes and restarts. While the count stays within
:func:`syncd.engine.rules.guard_limit` they go; the change that would pass it, and every consent
change and delete after it, is *held*: the integration holds until a person confirms
(``syncd confirm NAME``, or ``syncd sync start NAME --confirm``). Other attribute and tag
updates go on. Nothing confirms by itself.

What is held is not lost: a held write goes without its flipped consents and is recorded
with the consents last written and no digest, so every later evaluation of the record
derives the flip again (and holds it again while the hold lasts); the held records are kept
in the store, and a confirm queues them again as real-time events, so they are read afresh
from the source and applied (each passes the guard once). Held write-backs stay in the
opt-out table and go at the next consent poll after the confirm.

A full sync started with ``--confirm`` is the person's: its changes pass uncounted. Its
resume after a restart is not (the confirm was given for the run as started): past the
share, what it would change is held like any other change.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence, Set
from typing import Any

import structlog

from syncd.config.model import IntegrationConfig
from syncd.connectors.connection import ConnectionProxy
from syncd.engine import attribution as A
from syncd.engine import rules as R
from syncd.engine.batch import RecordError
from syncd.engine.explain import Journal
from syncd.engine.jobs import CALL_TIMEOUT
from syncd.engine.store import Store
from syncd.records import Event


def guard_status(store: Store, integration: IntegrationConfig) -> dict[str, Any]:
    """The guard's state for ``syncd status``."""
    state = store.guard_state(integration.name, integration.confirm_window)
    limit = R.guard_limit(integration.confirm_share, store.link_count(integration.name))
    return {
        "count": state["count"],
        "limit": limit,
        "window": integration.confirm_window,
        "held_since": state["held_since"],
        "reason": state["reason"],
        "held": state["held"],
        "confirm": f"syncd confirm {integration.name}" if state["held_since"] else None,
    }


def held_error(held: int, share: float, name: str) -> str | None:
    """Why a full sync that held ``held`` consent changes or deletes needs a confirm (its
    status becomes ``needs_confirmation``), None when it held nothing."""
    if not held:
        return None
    return (f"{held} consent changes or deletes were held: more than {share:.0%} of the "
            f"profiles would change (other updates were written; fix: check the source and "
            f"the mappings, then run `syncd confirm {name}` or `syncd sync start {name} "
            f"--confirm`)")


def sensitive(writes: Sequence[R.Write], deletes: Sequence[R.Delete]) -> list[tuple[str, str]]:
    """The changes the guard counts, as ``(kind, key)``: the consent flips of a write (by its
    profile key) and the deletes (by their source record), in input order."""
    return [("consent", w.profile.key) for w in writes if w.flipped] + \
        [("delete", d.record_id or d.key) for d in deletes]


def held_out(writes: Sequence[R.Write], deletes: Sequence[R.Delete],
             admitted: Set[tuple[str, str]]
             ) -> tuple[list[R.Write], list[R.Delete], list[tuple[str, str]]]:
    """What goes of a batch once the guard ``admitted`` some of its :func:`sensitive`
    changes: every write, those whose flips were not admitted without them
    (:func:`syncd.engine.rules.hold_consents`); the admitted deletes; and ``(record id,
    what)`` for each change held, for the journal."""
    out_writes: list[R.Write] = []
    held: list[tuple[str, str]] = []
    for write in writes:
        if write.flipped and ("consent", write.profile.key) not in admitted:
            held.append((write.profile.key, "consent changes " + ", ".join(write.flipped)))
            write = R.hold_consents(write)
        out_writes.append(write)
    out_deletes = []
    for delete in deletes:
        if ("delete", delete.record_id or delete.key) in admitted:
            out_deletes.append(delete)
        else:
            held.append((delete.record_id or delete.key, f"delete ({delete.reason})"))
    return out_writes, out_deletes, held


def hold_reason(share: float, profiles: int, limit: int | None, window: float,
                name: str) -> str:
    """Why the guard starts holding an integration (``syncd status``, the journal)."""
    return (f"more than {share:.0%} of {profiles} profiles (limit {limit}) would change "
            f"consents or be deleted within {window / 3600:g} h; consent changes and deletes "
            f"are held (fix: check the source and the mappings, then run `syncd confirm "
            f"{name}`)")


class Guard:
    """Held by :class:`syncd.engine.coordinator.Coordinator` (``coordinator.gate``). It counts
    and holds in ``store``, journals what it holds, and confirms deletes by reading each
    record directly through ``source()`` (the current proxy of the source connection) when
    ``can_read_record``. The coordinator sets :attr:`integration` again on a reload."""

    def __init__(self, store: Store, integration: IntegrationConfig, journal: Journal,
                 source: Callable[[], ConnectionProxy], *, can_read_record: bool,
                 log: structlog.stdlib.BoundLogger):
        self.store = store
        self.integration = integration
        self.journal = journal
        self.source = source
        self.can_read_record = can_read_record
        self.log = log
        #: The running full sync was confirmed by a person: its changes pass uncounted.
        self.confirmed = False
        #: Consent changes and deletes held since the running full sync started.
        self.held = 0

    @property
    def name(self) -> str:
        return self.integration.name

    # -- a full sync's share ----------------------------------------------------------------

    def start_run(self, run_id: int, confirm: bool) -> None:
        """A full sync starts; ``confirm``: a person confirmed it, so the hold and the count
        start again and its changes are theirs."""
        if confirm:
            self.store.guard_confirm(self.name)
            self.log.warning("guard.confirmed", run_id=run_id)
        self.confirmed, self.held = confirm, 0

    def end_run(self) -> int:
        """The running full sync ends; returns how many changes it held."""
        held, self.confirmed, self.held = self.held, False, 0
        return held

    # -- what may go --------------------------------------------------------------------------

    def admit(self, items: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of the sensitive ``(kind, key)`` changes may go now; counts them and holds
        the rest (and the integration)."""
        if not items:
            return set()
        store, cfg = self.store, self.integration
        confirmed = store.guard_take_confirmed(self.name, items)
        if self.confirmed:  # a run a person confirmed: its changes are theirs, uncounted
            return set(items)
        todo = [i for i in items if i not in confirmed]
        if not todo:
            return confirmed
        state = store.guard_state(self.name, cfg.confirm_window)
        limit = R.guard_limit(cfg.confirm_share, store.link_count(self.name))
        allowed = R.guard_allowance(state["count"], len(todo), limit,
                                    state["held_since"] is not None)
        admitted, held = todo[:allowed], todo[allowed:]
        reason = None
        if held and state["held_since"] is None:
            reason = hold_reason(cfg.confirm_share, store.link_count(self.name), limit,
                                 cfg.confirm_window, self.name)
            self.log.error("guard.held", count=state["count"] + len(admitted), limit=limit,
                           window=cfg.confirm_window, reason=reason)
        store.guard_admit(self.name, admitted, held, reason, cfg.confirm_window)
        if held:
            self.log.warning("guard.holding", held=len(held),
                             kinds=sorted({k for k, _ in held}))
        return confirmed | set(admitted)

    def guarded(self, counts: dict[str, int], writes: list[R.Write],
                deletes: list[R.Delete]) -> tuple[list[R.Write], list[R.Delete]]:
        """``writes`` with held consent flips taken out, and the deletes that may go."""
        admitted = self.admit(sensitive(writes, deletes))
        writes, deletes, held = held_out(writes, deletes, admitted)
        if held:
            self.journal.held(held, self.store.guard_state(
                self.name, self.integration.confirm_window)["reason"])
            counts["held"] = counts.get("held", 0) + len(held)
            self.held += len(held)
        return writes, deletes

    def confirmed_deletes(self, rules: R.Rules, counts: dict[str, int],
                          deletes: list[R.Delete], errors: list[RecordError]
                          ) -> list[R.Delete]:
        """The deletes a direct read of each record in the source confirms (see
        :func:`syncd.engine.attribution.delete_check`); a failed read is a retryable error of
        that record, never a delete. Sources that cannot read one record directly delete
        none."""
        if not deletes:
            return deletes
        if not self.can_read_record:
            self.log.warning("delete.unconfirmable", count=len(deletes),
                             reason=f"{self.integration.source} cannot read one record "
                                    f"directly; profiles are kept")
            counts["kept"] = counts.get("kept", 0) + len(deletes)
            return []
        confirmed = []
        for delete in deletes:
            try:
                direct = self.source().read_record(delete.record_id or delete.key
                                                   ).get(timeout=CALL_TIMEOUT)
                check = A.delete_check(rules, delete, direct)
            except Exception as exc:
                check = A.delete_unread(delete, exc)
            if isinstance(check, R.Delete):
                confirmed.append(check)
            elif check is None:
                counts["kept"] = counts.get("kept", 0) + 1
                self.log.warning("delete.refused", record_id=delete.record_id or delete.key,
                                 reason=delete.reason,
                                 found="the record exists in the source and matches")
            else:
                errors.append(check)
                counts["failed"] = counts.get("failed", 0) + 1
        return confirmed

    def write_backs(self, keys: list[str]) -> set[str]:
        """The profile keys whose opt-outs may be written back to the source now."""
        # a write-back that failed and is tried again was counted when first admitted
        counted = self.store.guard_counted(self.name, "writeback", keys,
                                           self.integration.confirm_window)
        admitted = self.admit([("writeback", k) for k in keys if k not in counted])
        return counted | {k for _, k in admitted}

    # -- a person's confirm -------------------------------------------------------------------

    def confirm(self) -> dict[str, Any]:
        """A person confirmed: the hold ends, the count starts from zero, and the records
        held are queued again as events (read again from the source and applied). Returns
        what was released; the coordinator drains the events and runs the write-backs."""
        released = self.store.guard_confirm(self.name)
        records = sorted({key for kind, key in released if kind in ("consent", "delete")})
        if records:
            self.store.enqueue([(self.name, self.integration.source, Event(r, kind="confirmed"))
                                for r in records])
        writebacks = sum(1 for kind, _ in released if kind == "writeback")
        self.log.warning("guard.confirmed", records=len(records), write_backs=writebacks,
                         at=time.time())
        return {"integration": self.name, "released": len(released),
                "records": len(records), "write_backs": writebacks}
