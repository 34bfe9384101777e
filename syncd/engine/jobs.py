"""The jobs a coordinator runs besides full syncs and real-time events, as an object the
coordinator actor holds: the daily creation of new contacts, and the write-back of consents
changed in the destination (unsubscribes in APSIS One become removed opt-in labels in the
CRM). Jobs arrive as ``run_job`` messages from the scheduler, the CLI or the coordinator's
own timer (``consent_poll``, :mod:`syncd.engine.timers`); they guard themselves, since a failing told message would stop the actor.

Daily creation and overview imports are paged like full syncs: each is a generator that
yields after every page, and each page is one ``job_step`` message the coordinator sends
itself, so ``syncd status``, pings and ``sync start`` are answered between pages. One such
job runs at a time (others wait their turn); one that finds a full sync started stops,
leaving its cursor, so the next run reads the same window again.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from syncd.connectors.capabilities import Capability
from syncd.connectors.lanes import REALTIME
from syncd.engine import rules as R
from syncd.engine.batch import overview_tags
from syncd.engine.writeback import WriteBacks
from syncd.records import Event

if TYPE_CHECKING:
    from syncd.engine.coordinator import Coordinator

#: How long a coordinator waits for one call of a connection actor.
CALL_TIMEOUT = 600.0
#: The key of the consent poll's timer.
CONSENT_POLL = "consent_poll"


def shortfall(processed: int, total: int | None) -> str | None:
    """Why a run that read its source to the end is not complete: it processed fewer records
    than the source counted when it started (a server that capped pages and ended early, or
    records deleted meanwhile). None when nothing is missing or no count was given."""
    if total is None or processed >= total:
        return None
    return (f"incomplete: processed {processed} of the {total} records the source counted "
            f"({total - processed} missing); the source ended its listing early or deleted "
            f"records meanwhile (fix: run the sync again; if it stays short, check the "
            f"source's paging)")


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


class Jobs:
    """Held by a :class:`syncd.engine.coordinator.Coordinator` (``coordinator.jobs``), which
    provides store, rules, integration, source, destination, progress, log and the writes,
    and passes its ``run_job``, ``job_step`` and ``job_running`` messages on to it."""

    def __init__(self, coordinator: Coordinator):
        self.c = coordinator
        #: The paged job running (a generator that yields after each page), its name, and
        #: the paged jobs waiting their turn.
        self._job: Generator[None, None, None] | None = None
        self._job_name = ""
        self._job_queue: tuple[tuple[str, dict[str, Any]], ...] = ()
        #: The write-back of destination opt-outs, newest wins (:mod:`syncd.engine.writeback`).
        self.write_backs = WriteBacks(coordinator)

    def run_job(self, job: str, params: dict[str, Any] | None = None) -> None:
        """A scheduled or on-demand job. Told, not asked: it guards itself. A paged job
        (daily creation, overview import) only starts here: its pages follow as messages."""
        handlers = {"consent_changes": self._consent_changes,
                    "write_backs": self._write_backs,
                    "responses": self.c.responses.start}
        try:
            if job in ("daily_creation", "overview"):
                self._start_paged(job, params or {})
                return
            if job not in handlers:
                raise ValueError(f"{job} jobs are not supported yet")
            handlers[job](params or {})
        except Exception as exc:
            self._job_failed(job, exc)

    def _job_failed(self, job: str, exc: Exception) -> None:
        self.c.log.error("job.failed", job=job, exc_info=exc)
        self.c.progress.last_error = f"{job}: {type(exc).__name__}: {exc}"

    # -- paged jobs: one page per message ------------------------------------------------

    def _start_paged(self, job: str, params: dict[str, Any]) -> None:
        if self._job is not None:
            self._job_queue = (*self._job_queue, (job, params))
            return
        make = self._daily_creation if job == "daily_creation" else self._import_overview
        self._job, self._job_name = make(params), job
        self.c._self.job_step.defer()

    def job_step(self) -> None:
        """One page of the running paged job; the next page is the next message."""
        job = self._job
        if job is None:
            return
        try:
            next(job)
            self.c._self.job_step.defer()
            return
        except StopIteration:
            pass
        except Exception as exc:
            self._job_failed(self._job_name, exc)
        self._job = None
        if self._job_queue:
            (name, params), *rest = self._job_queue
            self._job_queue = tuple(rest)
            self._start_paged(name, params)

    def job_running(self) -> bool:
        """True while a paged job runs or waits its turn."""
        return self._job is not None

    def stop(self) -> None:
        """The actor stops: no more consent polls; the running paged job ends cancelled,
        its cursor unmoved."""
        self.c.timers.cancel(CONSENT_POLL)
        job, self._job, self._job_queue = self._job, None, ()
        if job is not None:
            job.close()

    def _page_done(self, run_id: int, what: str) -> bool:
        """False when a full sync started since the last page: the job stops, its run
        cancelled and its cursor unmoved, so the next run reads the same again."""
        if self.c.progress.state != "full_sync":
            return True
        self.c.store.finish_run(run_id, "cancelled", f"a full sync started during the {what}")
        self.c.log.info(f"{what}.cancelled", run_id=run_id, reason="a full sync started")
        return False

    def _stopped(self, run_id: int) -> None:
        self.c.store.finish_run(run_id, "cancelled", "the coordinator stopped")

    # -- daily creation -----------------------------------------------------------------------

    def _daily_creation(self, params: dict[str, Any]) -> Generator[None, None, None]:
        """Create profiles for records created or changed since the last run: the safety
        net for missed webhooks. The window reaches ``overlap`` seconds before the previous
        run's start; the cursor is that start, so it never passes a record not yet seen.
        Writes are upserts by the record id, so overlapping windows never duplicate."""
        if self.c.progress.state == "full_sync":
            self.c.log.info("daily_creation.skipped", reason="a full sync is running")
            return
        started = time.time()
        overlap = float(params.get("overlap", 3600.0))
        last = self.c.store.cursor(self.c.name, "daily_creation")
        since = iso((float(last) if last else started - 86400.0) - overlap)
        run_id = self.c.store.start_run(self.c.name, "daily_creation", cursor=since)
        self.c.log.info("daily_creation.started", run_id=run_id, since=since)
        cursor: str | None = None
        processed, total = 0, None
        try:
            while True:
                page = self.c.source.read_page(cursor, self.c.integration.page_size, since=since
                                             ).get(timeout=CALL_TIMEOUT)
                counts, errors = self.c._apply(list(page.records), full_sync=False)
                self.c.store.progress_run(run_id, counts, total=page.total, errors=errors)
                processed += len(page.records)
                total = page.total if page.total is not None else total
                cursor = page.cursor
                if cursor is None:
                    break
                yield
                if not self._page_done(run_id, "daily_creation"):
                    return
        except GeneratorExit:
            self._stopped(run_id)
            raise
        except Exception as exc:
            self.c.store.finish_run(run_id, "failed", f"{type(exc).__name__}: {exc}")
            raise
        missing = shortfall(processed, total)
        if missing:  # the window is read again next time: the cursor stays
            self.c.store.finish_run(run_id, "incomplete", missing)
            self.c.log.warning("daily_creation.incomplete", run_id=run_id, processed=processed,
                             total=total)
            return
        self.c.store.set_cursor(self.c.name, "daily_creation", repr(started))
        self.c.store.finish_run(run_id, "completed")
        self.c.log.info("daily_creation.completed", run_id=run_id)

    # -- overviews ------------------------------------------------------------------------

    def _import_overview(self, params: dict[str, Any]) -> Generator[None, None, None]:
        """Import the contacts of a CRM overview: members get the overview's tag (and their
        profile, if the conditions hold), contacts no longer in it lose the tag. Changes
        to an overview show after the next import (seed 001)."""
        name, tag = params["overview"], params["tag"]
        if Capability.READ_GROUPS not in self.c.capabilities.get("source", ()):
            raise ValueError(f"the source of {self.c.name} cannot read overviews")
        if self.c.progress.state == "full_sync":
            self.c.log.info("overview.skipped", overview=name, reason="a full sync is running")
            return
        run_id = self.c.store.start_run(self.c.name, f"overview:{name}")
        try:
            members = set(self.c.source.read_group(name).get(timeout=CALL_TIMEOUT))
            cursor_name = f"overview:{name}"
            before = set(json.loads(self.c.store.cursor(self.c.name, cursor_name) or "[]"))
            ids = sorted(members | before)
            for start in range(0, len(ids), self.c.integration.page_size):
                chunk = ids[start:start + self.c.integration.page_size]
                records = self.c.source.read_records([Event(i) for i in chunk]
                                                   ).get(timeout=CALL_TIMEOUT)
                counts, writes, deletes, unreadable = self.c._decide(records)
                known = self.c.store.links(self.c.name, [r.id for r in records])
                writes = overview_tags(records, writes, known, members, tag)
                counts, errors = self.c._write(counts, writes, deletes, full_sync=False)
                self.c.store.progress_run(run_id, counts, total=len(ids),
                                        errors=unreadable + errors)
                yield
                if not self._page_done(run_id, "overview"):
                    return
            self.c.store.set_cursor(self.c.name, cursor_name, json.dumps(sorted(members)))
        except GeneratorExit:
            self._stopped(run_id)
            raise
        except Exception as exc:
            self.c.store.finish_run(run_id, "failed", f"{type(exc).__name__}: {exc}")
            raise
        self.c.store.finish_run(run_id, "completed")
        self.c.log.info("overview.imported", overview=name, members=len(members))

    # -- consents changed in the destination --------------------------------------------------

    def consent_write_back(self) -> bool:
        """True when this integration writes destination opt-outs back to the source."""
        caps = self.c.capabilities
        return bool(self.c.rules.consents) and \
            Capability.READ_CONSENT_CHANGES in caps.get("destination", ()) and \
            Capability.WRITE_CONSENTS in caps.get("source", ())

    def schedule_consent_poll(self) -> None:
        """Set the timer of the next consent poll (replacing the one set); none when this
        integration writes no consents back (a reload may have turned that off)."""
        if not self.consent_write_back():
            self.c.timers.cancel(CONSENT_POLL)
            return
        proxy = self.c.actor_ref.proxy()
        self.c.timers.call_later(CONSENT_POLL, self.c.integration.consent_poll_interval,
                                 lambda: proxy.run_job.defer("consent_changes", {}))

    def _consent_changes(self, params: dict[str, Any]) -> None:
        """Read the opt-outs made in the destination since the last read, remember them (so
        no sync opts those profiles back in on old data) and remove the mapped labels in the
        source, unless the source holds a newer opt-in (:mod:`syncd.engine.writeback`). What
        could not be written back, or waits, is tried again at the next poll."""
        try:
            if not self.consent_write_back():
                return
            by_topic = {(m.topic, m.channel): m.label for m in self.c.rules.consents}
            cursor = self.c.store.cursor(self.c.name, "consent_changes")
            changes, nxt = self.c.destination.read_consent_changes(cursor).get(timeout=CALL_TIMEOUT)
            changes = self._drop_our_own_optouts(changes)
            changes = self._drop_other_integrations(changes)
            rows = [(c.key, c.topic, c.channel, c.at) for c in changes
                    if not c.opted_in and (c.topic, c.channel) in by_topic]
            if rows:
                self.c.store.record_optouts(self.c.name, rows)
                self._note_destination_state(rows)
                self.c.log.info("consent.optouts_read", count=len(rows))
            self.c.store.set_cursor(self.c.name, "consent_changes", nxt)
            with self.c.lanes.using(REALTIME):  # a person's opt-out: not behind a full sync's pages
                self.write_backs.run(by_topic)
        finally:
            self.schedule_consent_poll()

    def _write_backs(self, params: dict[str, Any]) -> None:
        """The pending write-backs decided again (after a change they waited for was
        applied), without reading the destination's changes."""
        if self.consent_write_back():
            with self.c.lanes.using(REALTIME):
                self.write_backs.run({(m.topic, m.channel): m.label
                                      for m in self.c.rules.consents})

    def _drop_other_integrations(self, changes: list) -> list:
        """Several integrations may write into one destination account (a Tribe and a Lime
        CRM into one APSIS account): a change of a profile another integration wrote and this
        one never did is that one's, never written back to this source."""
        theirs = self.c.store.linked_elsewhere(self.c.name, [c.key for c in changes])
        if theirs:
            self.c.log.debug("consent.changes_of_other_integrations", count=len(theirs))
        return [c for c in changes if c.key not in theirs]

    def _drop_our_own_optouts(self, changes: list) -> list:
        """Inferred opt-outs (an unsubscribe that named no topic) that syncd itself wrote
        are not a person's: they stay unresolved, never removing a label in the source."""
        inferred = sorted({c.key for c in changes if c.inferred})
        if not inferred:
            return changes
        kept, unresolved = R.split_inferred(changes, self.c.store.links(self.c.name, inferred))
        if unresolved:
            self.c.log.warning("consent.unresolved", count=len(unresolved),
                             reason="an unsubscribe named no topic and the profile's opt-outs "
                                    "are ones syncd wrote")
        return kept

    def _note_destination_state(self, rows: list[tuple[str, str, str, str]]) -> None:
        """These consents changed in the destination behind syncd's back, possibly before
        an opt-in syncd wrote on older knowledge: mark them unknown (None) in the links, so
        that the next evaluation of these records sends them whatever they are."""
        links = self.c.store.links(self.c.name, sorted({r[0] for r in rows}))
        unknown = R.consents_unknown(links, [(key, topic, channel) for key, topic, channel, _
                                             in rows])
        self.c.store.save_links(self.c.name, [(k, link.dest_key, None, link.state)
                                          for k, link in unknown.items()])
