"""The two-way, per-user link between Tribe relationships and one user's Outlook contacts
(seed 002), built on the pure two-way decision :func:`syncd.engine.twoway.decide` (``syncd.plugin.decide``).

- **Who**: relationships whose manager or an owner is the user's employee, not former
  (:meth:`syncd_tribe.people.Relationship.sees`). Anything else is left alone: nothing is
  ever deleted on either side.
- **Tribe → Outlook** (:meth:`UserLink.tribe_changed`): a relationship without a pair is
  created in Outlook with the connector id (the relationship's id) as an extended property,
  in chained ``$batch`` requests; the pair is written ``creating`` before and ``linked``
  after (a crash in between is healed by looking the connector id up: no duplicate). A
  linked one is compared field by field with the contact and the status.
- **Outlook → Tribe** (:meth:`UserLink.outlook_changed`): only contacts that have a pair
  (came from Tribe); the fields of seed 002's tables for the relationship's kind (contact or
  private), first e-mail / phone only. A contact deleted in Outlook loses its pair (Tribe
  keeps the relationship); the next change in Tribe creates it again while the user still
  manages or owns it.
- **Merges** (seed 002 chapter 3): an Outlook contact whose e-mail address another contact of
  the mailbox has too is held (``held`` in the pair, shown by ``syncd status``), never
  written to Tribe.
- **Conflicts**: newest wins per field (Tribe's ``LastMutationDate`` against the contact's
  ``lastModifiedDateTime``); the loser is logged.
- **Catch-up**: :meth:`UserLink.catch_up` runs a delta round from the stored delta link; a
  410 starts a full re-read of that mailbox.
"""

from __future__ import annotations

from typing import Any

import structlog

from syncd.plugin import RemoteError, decide, for_records
from syncd_ms365.graph import DeltaExpired, _template
from syncd_ms365.mailbox import FIELDS, Mailbox, from_outlook, to_outlook
from syncd_ms365.pairs import Pairs
from syncd_ms365.rounds import Round, batch_result

log = structlog.get_logger("syncd.ms365.link")

#: Tribe → Outlook for every kind; back only what seed 002 lists (people.BACK).
BACK = {"contact": ("initials", "givenName", "middleName", "surname", "birthday", "email",
                    "jobTitle", "workPhone", "mobile"),
        "private": ("initials", "givenName", "middleName", "surname", "birthday", "email",
                    "mobile", "homePhone")}


class UserLink:
    def __init__(self, user: str, employee: str, people, mailbox: Mailbox, pairs: Pairs):
        self.user, self.employee = user, employee
        self.people, self.mailbox, self.pairs = people, mailbox, pairs
        self.log = log.bind(user=user)
        self.counts = {"created": 0, "updated_outlook": 0, "updated_tribe": 0, "held": 0,
                       "unlinked": 0, "conflicts": 0, "adopted": 0}
        #: the round being planned (:mod:`.rounds`); None: each method writes at once
        self.round: Round | None = None
        #: this round compares every relationship (after a person released the link)
        self.full = False

    # -- a round: plan, guard, write -------------------------------------------------------

    def begin(self, round_: Round) -> None:
        self.round = round_

    def commit(self) -> None:
        """Guard the planned round, then write it (fail-fast probing each write)."""
        round_, self.round = self.round, None
        if round_ is None:
            return
        round_.guard(self.pairs.counts(self.user).get("linked", 0))
        if round_.creates:
            self._create(round_.creates, round_)
        for rel, contact, d, old in round_.updates:
            self._apply(rel, contact, d, old, round_)
        if round_.delta:
            self.pairs.set_mailbox(self.user, delta=round_.delta)

    def abandon(self) -> None:
        self.round = None

    # -- Tribe → Outlook -------------------------------------------------------------------

    def initial_sync(self) -> None:
        """Send every relationship the user sees to Outlook, then start change tracking."""
        self.tribe_changed(self.people.relationships())
        self.pairs.set_mailbox(self.user, initial_done=1)
        self.catch_up()

    def tribe_changed(self, rels: list) -> None:
        creates = []
        for rel in rels:
            if not rel.sees(self.employee):
                continue  # former, or no longer the user's: never delete
            with for_records([rel.key]):  # syncd explain LINK RECORD shows its calls
                if self._tribe_one(rel):
                    creates.append(rel)
        if creates and self.round is not None:
            self.round.creates += creates
        elif creates:
            self._create(creates, None)

    def _tribe_one(self, rel) -> bool:
        """Compare one relationship with its contact; True when it must be created."""
        pair = self.pairs.get(self.user, rel.key)
        if pair is not None and pair.state == "creating":
            found = self.mailbox.find(self.user, rel.key)
            if found is not None:  # created before a crash lost the bookkeeping
                self.counts["adopted"] += 1
                self.pairs.put(self.user, rel.key, state="linked", remote=found["id"])
                self._compare(rel, found, {})
                return False
        if pair is None or pair.state != "linked":
            return True
        if from_outlook(to_outlook(rel.fields)) == {f: pair.status.get(f) for f in FIELDS}:
            if self.round is not None:
                self.round.run.count("outlook", "unchanged")
            return False  # Tribe unchanged since the last agreement: Outlook's come by delta
        current = self.mailbox.get(self.user, pair.remote or "")
        if current is None:  # deleted in Outlook: back after a change in Tribe
            self.counts["unlinked"] += 1
            return True
        self._compare(rel, current, pair.status)
        return False

    def _create(self, rels: list, round_: Round | None) -> None:
        self.pairs.creating(self.user, [r.key for r in rels])
        items = [self.mailbox.create_item(self.user, r.fields, r.key) for r in rels]
        try:
            with for_records([r.key for r in rels]):  # one call for several: stored once
                results = self.mailbox.write(self.user, items)
        except RemoteError as exc:
            if exc.status is not None:
                raise
            # the answer was lost: some may exist now. Look each up, never create twice.
            self.log.warning("ms365.create_answer_lost", contacts=len(rels))
            self.round, saved = None, self.round
            try:
                self.tribe_changed(rels)
            finally:
                self.round = saved
            return
        endpoint = f"POST {_template(self.mailbox.graph.root(self.user))}/contacts"
        folder = None
        for rel, result in zip(rels, results, strict=True):
            if round_ is not None:
                name = round_.link_name
                outcome = batch_result(rel.key, result, endpoint, name)
                if outcome.outcome == "failed":  # the pair stays 'creating': looked up next
                    self.log.warning("ms365.create_failed", key=rel.key,
                                     status=result.get("status"))
                    round_.observe("outlook", rel.key, outcome)
                    continue
            if result.get("status") == 201:
                body = result["body"]
                folder = folder or body.get("parentFolderId")
                # the status is what syncd wrote (not the answer: Outlook may change a
                # card right after, e.g. a merge, and that is a change to see)
                status = from_outlook(to_outlook(rel.fields))
                self.pairs.put(self.user, rel.key, state="linked", remote=body["id"],
                               status=status)
                self.counts["created"] += 1
                if round_ is not None:
                    round_.observe("outlook", rel.key, batch_result(rel.key, result, "", ""))
            else:
                self.log.warning("ms365.create_failed", key=rel.key,
                                 status=result.get("status"))
        if folder and not self.pairs.mailbox(self.user)["folder"]:
            self.pairs.set_mailbox(self.user, folder=folder)

    # -- both directions -------------------------------------------------------------------

    def _compare(self, rel, contact: dict[str, Any], status: dict[str, Any]) -> None:
        outlook = from_outlook(contact)
        d = decide(rel.fields, outlook, status, FIELDS, left_fields=BACK[rel.kind],
                   left_time=rel.modified_at, right_time=contact.get("lastModifiedDateTime"))
        for c in d.conflicts:
            self.counts["conflicts"] += 1
            self.log.info("ms365.conflict", key=rel.key, field=c.field, winner=c.winner,
                          lost="outlook" if c.winner == "left" else "tribe")
        if d.to_left and self._merged(contact, outlook):
            self.counts["held"] += 1
            if self.round is not None:
                self.round.run.count("tribe", "skipped")
            self.pairs.put(self.user, rel.key, state="linked", remote=contact["id"],
                           status=status, held="merge: another contact in Outlook has "
                           f"the e-mail address {outlook['email']}")
            self.log.warning("ms365.merge_held", key=rel.key)
            return
        if self.round is not None and not d.empty:
            self.round.updates.append((rel, contact, d, status))
            return
        if self.round is not None:
            self.round.run.count("outlook", "unchanged")
        self._apply(rel, contact, d, status, None)

    def _apply(self, rel, contact: dict[str, Any], d, old: dict[str, Any],
               round_: Round | None) -> None:
        with for_records([rel.key]):
            self._write(rel, contact, d, old, round_)

    def _write(self, rel, contact: dict[str, Any], d, old: dict[str, Any],
               round_: Round | None) -> None:
        status = dict(d.status)
        if d.to_right:
            if round_ is None:
                self.mailbox.update(self.user, contact["id"], d.to_right, contact)
            elif not round_.attempt("outlook", rel.key, lambda: self.mailbox.update(
                    self.user, contact["id"], d.to_right, contact)):
                status = _keep(status, d.to_right, old)
            self.counts["updated_outlook"] += 1
        if d.to_left:
            if round_ is None:
                self.people.write(rel, d.to_left)
            elif not round_.attempt("tribe", rel.key,
                                    lambda: self.people.write(rel, d.to_left)):
                status = _keep(status, d.to_left, old)
            self.counts["updated_tribe"] += 1
        self.pairs.put(self.user, rel.key, state="linked", remote=contact["id"],
                       status=status)

    def _merged(self, contact: dict[str, Any], outlook: dict[str, Any]) -> bool:
        """Outlook merged this contact with another card sharing its e-mail address."""
        email = outlook.get("email")
        if not email:
            return False
        value = email.replace("'", "''")
        page = self.mailbox.graph.json(
            self.user, "GET", f"{self.mailbox.graph.root(self.user)}/contacts", params={
                "$filter": f"emailAddresses/any(a:a/address eq '{value}')", "$top": "2",
                "$select": "id"})
        return any(c["id"] != contact["id"] for c in page.get("value") or [])

    # -- Outlook → Tribe -------------------------------------------------------------------

    def outlook_changed(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            pair = self.pairs.by_remote(self.user, row["id"])
            if pair is None or pair.state != "linked":
                continue  # not from Tribe: Outlook's own contact stays Outlook's
            if "@removed" in row:
                self.counts["unlinked"] += 1
                self.pairs.put(self.user, pair.key, state="unlinked", remote=None)
                self.log.info("ms365.unlinked", key=pair.key)
                continue
            with for_records([pair.key]):  # syncd explain LINK RECORD shows its calls
                self._outlook_one(row, pair)

    def _outlook_one(self, row: dict[str, Any], pair) -> None:
        contact = row if "lastModifiedDateTime" in row else \
            self.mailbox.get(self.user, row["id"])
        if contact is None or (from_outlook(contact) == {
                f: pair.status.get(f) for f in FIELDS} and not pair.held):
            return  # syncd's own write, or nothing of the synced fields changed
        rel = self.people.get(pair.key)
        if rel is None:
            return
        self._compare(rel, contact, pair.status)

    def catch_up(self) -> None:
        """A delta round from the stored link (after a notification or any gap); a 410 or
        no link yet: a full read of the folder, compared with the status."""
        state = self.pairs.mailbox(self.user)
        try:
            rows, link = self.mailbox.delta(self.user, state["delta"], state["folder"])
        except DeltaExpired:
            self.log.warning("ms365.delta_expired")
            rows, link = self.mailbox.delta(self.user, None, state["folder"])
        self.outlook_changed(rows)
        if link and self.round is not None:
            self.round.delta = link  # kept once the round's writes are done
        elif link:
            self.pairs.set_mailbox(self.user, delta=link)


def _keep(status: dict[str, Any], fields: dict[str, Any], old: dict[str, Any]
          ) -> dict[str, Any]:
    """The status after a failed write of ``fields``: their previous agreement, so the next
    round sees the same change again (never taken as agreed)."""
    out = {k: v for k, v in status.items() if k not in fields}
    out.update({k: old[k] for k in fields if k in old})
    return out
