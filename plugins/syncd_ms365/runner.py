"""Runs the per-user links of one ``ms365`` connection: every linked user's
:class:`~syncd_ms365.link.UserLink`, each on its own, so that one user's revoked or expired
consent (:class:`~syncd_ms365.auth.ConsentRequired`) stops that user only: it is logged,
shown in :meth:`LinkRunner.status` (and so ``syncd status``), and the others go on.

- a user linked and not yet synced gets its initial sync (seed 002: "save and start initial
  synchronisation");
- :meth:`tribe_changed`: relationships changed in Tribe go to every linked user who sees them;
- :meth:`notified`: change notifications and lifecycle events of a mailbox run a delta round
  (the notification only says *that* something changed: apis.md 4.5, resourceData may be
  stale), ``missed`` and any gap too.
"""

from __future__ import annotations

from typing import Any

import structlog

from syncd_ms365.auth import ConsentRequired
from syncd_ms365.link import UserLink
from syncd_ms365.pairs import Pairs

log = structlog.get_logger("syncd.ms365.runner")


class LinkRunner:
    def __init__(self, connector, people, pairs: Pairs):
        self.connector, self.people, self.pairs = connector, people, pairs
        self.links: dict[str, UserLink] = {}
        self.problems: dict[str, str] = {}

    def _link(self, user: str) -> UserLink | None:
        link = self.links.get(user)
        if link is None:
            employee = self.people.employee(user)
            if employee is None:
                self.problems[user] = "no Tribe employee has this e-mail address"
                return None
            link = self.links[user] = UserLink(user, employee, self.people,
                                               self.connector.mailbox, self.pairs)
        return link

    def _each(self, users: list[str], work) -> None:
        for user in users:
            link = self._link(user)
            if link is None:
                continue
            try:
                work(link)
                self.problems.pop(user, None)
            except ConsentRequired as exc:
                self.problems[user] = f"consent required: {exc.reason}"
                log.warning("ms365.user_skipped", user=user, reason=exc.reason)

    def users(self) -> list[str]:
        self.connector.accounts.reload()
        return self.connector.accounts.linked_users()

    def sync_new_users(self) -> list[str]:
        """The initial sync of each linked user that has not had one."""
        new = [u for u in self.users() if not self.pairs.mailbox(u)["initial_done"]]
        self._each(new, lambda link: link.initial_sync())
        return new

    def tribe_changed(self, keys: list[str]) -> None:
        rels = [r for r in (self.people.get(k) for k in keys) if r is not None]
        self._each(self.users(), lambda link: link.tribe_changed(rels))

    def tribe_all(self) -> None:
        """Compare every relationship with each user's Outlook (those whose Tribe fields
        equal the status cost no Graph request)."""
        rels = self.people.relationships()
        self._each(self.users(), lambda link: link.tribe_changed(rels))

    def tribe_since(self, since: str) -> None:
        """Only the relationships Tribe changed since ``since`` (a round's cursor)."""
        rels = self.people.changed_since(since)
        if rels:
            self._each(self.users(), lambda link: link.tribe_changed(rels))

    def notified(self, user: str) -> None:
        self._each([user], lambda link: link.catch_up())

    def catch_up_all(self) -> None:
        self._each(self.users(), lambda link: link.catch_up())

    def status(self) -> dict[str, Any]:
        accounts = self.connector.accounts.summary()
        out = {}
        for user in sorted(set(accounts) | set(self.problems)):
            entry = dict(accounts.get(user, {}))
            if user in self.problems:
                entry["problem"] = self.problems[user]
            entry["pairs"] = self.pairs.counts(user)
            entry["held"] = [{"key": p.key, "reason": p.held} for p in self.pairs.held(user)]
            out[user] = entry
        return out
