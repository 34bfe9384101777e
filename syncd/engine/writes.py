"""Writing a batch's decisions, as an object the coordinator actor holds
(``coordinator.writer``); every write path (full syncs and their bulk imports, real-time
events, daily creation, overview imports, applied dry-run plans) goes through
:meth:`BatchWriter.write`:

1. the deletes are confirmed by a direct read of each record in the source, and the consent
   flips and deletes pass the stop-and-confirm guard (:mod:`syncd.engine.guard`);
2. the links of the profiles to write are stored first, without a digest and with what is
   sent in flight (:mod:`syncd.engine.inflight`); the writes go with the fail-fast probe
   first (:mod:`syncd.engine.failfast`), then the deletes;
3. what each answer means for its record is decided by
   :func:`syncd.engine.attribution.answered` and applied: counts, per-record errors, links
   saved (with the digest) or dropped, destination opt-outs forgotten.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from syncd.connectors.connection import ConnectionProxy
from syncd.engine import attribution as A
from syncd.engine import rules as R
from syncd.engine.batch import RecordError
from syncd.engine.explain import Journal
from syncd.engine.failfast import FailFastWrites
from syncd.engine.guard import Guard
from syncd.engine.inflight import before_answer
from syncd.engine.jobs import CALL_TIMEOUT
from syncd.engine.store import Store
from syncd.records import WriteResult


class BatchWriter:
    """Held by :class:`syncd.engine.coordinator.Coordinator`; ``destination()`` returns the
    current proxy of the destination connection (it changes when the daemon restarts it)."""

    def __init__(self, store: Store, name: str, journal: Journal, gate: Guard,
                 failfast: FailFastWrites, destination: Callable[[], ConnectionProxy],
                 log: structlog.stdlib.BoundLogger):
        self.store = store
        self.name = name
        self.journal = journal
        self.gate = gate
        self.failfast = failfast
        self.destination = destination
        self.log = log

    def write(self, rules: R.Rules, counts: dict[str, int], writes: list[R.Write],
              deletes: list[R.Delete], *, full_sync: bool, bulk: bool = False
              ) -> tuple[dict[str, int], list[RecordError]]:
        """Write ``writes`` and make ``deletes`` (the decisions of ``rules``); returns
        ``counts`` with the answers added, and the per-record errors. Raises
        :class:`syncd.engine.failfast.FailedFast` when the probe trips."""
        errors: list[RecordError] = []
        deletes = self.gate.confirmed_deletes(rules, counts, deletes, errors)
        writes, deletes = self.gate.guarded(counts, writes, deletes)
        results: list[WriteResult] = []
        if writes:
            # Links first, without a digest and with what is sent in flight: a crash during
            # the write must not leave a profile syncd does not know it made, nor a digest
            # or a consent or tag state of an older write that would make the source's
            # next change back to it look "unchanged" when this write landed and its answer
            # was lost. The digest and the state follow the answer.
            self.store.links_before_write(
                self.name, [(w.profile.key, w.known, before_answer(w)) for w in writes])
            results = self.failfast.send(writes, bulk)
            self.journal.answered([(w.profile.key, "write", r, w.profile.attributes)
                                   for w, r in zip(writes, results, strict=True)],
                                  via=self.destination())  # with the calls made
        deleted: list[WriteResult] = []
        if deletes:
            deleted = self.destination().delete_profiles([d.key for d in deletes]
                                                         ).get(timeout=CALL_TIMEOUT)
            self.journal.answered([(d.record_id or d.key, "delete", r)
                                   for d, r in zip(deletes, deleted, strict=True)],
                                  via=self.destination())
        done = A.answered(writes, results, deletes, deleted)
        for key, value in done.counts.items():
            counts[key] = counts.get(key, 0) + value
        errors += done.errors
        if done.gone:
            self.store.delete_links(self.name, done.gone)
        if done.links:
            self.store.save_links(self.name, done.links)
        if done.overridden:
            self.store.forget_optouts(self.name, done.overridden)
        for key, reason, _ in errors:
            self.log.warning("record.failed", record_id=key, reason=reason,
                             full_sync=full_sync)
        return counts, errors
