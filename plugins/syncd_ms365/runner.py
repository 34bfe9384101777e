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

Each user's round is operated as the core operates an integration's runs
(``connector.links``, :mod:`.rounds`): a run in ``syncd runs CONNECTION:USER`` (kind
``initial_sync``, ``poll``, ``webhook`` or ``notification``; a round that found no change
and wrote, failed and held nothing is only counted, in ``syncd status``), the guard (a held
user waits for ``syncd confirm CONNECTION:USER``, then compares everything once) and
fail-fast (a stopped user waits for ``syncd sync start CONNECTION:USER`` or a restart).
"""

from __future__ import annotations

from typing import Any

import structlog

from syncd.plugin import NoLinks
from syncd_ms365.auth import ConsentRequired
from syncd_ms365.link import UserLink
from syncd_ms365.pairs import Pairs
from syncd_ms365.rounds import Held, LinkStopped, Round

log = structlog.get_logger("syncd.ms365.runner")


class LinkRunner:
    def __init__(self, connector, people, pairs: Pairs):
        self.connector, self.people, self.pairs = connector, people, pairs
        self.links: dict[str, UserLink] = {}
        self.problems: dict[str, str] = {}
        #: the core's runs, guard and stops (``connector.links``; none outside a daemon)
        self.ops = connector.links or NoLinks(connector.name)
        self.share = float(connector.config.get("confirm_share", 0.1))
        self.window = int(connector.config.get("fail_fast", 20))
        #: users a person confirmed (their next round passes the guard once)
        self.confirmed: set[str] = set()
        #: users whose next round compares every relationship (after a confirm or a start)
        self.full: set[str] = set()
        #: called after a release, to run a round at once (the service's wake)
        self.wake = lambda: None

    def _link(self, user: str) -> UserLink | None:
        link = self.links.get(user)
        if link is None:
            employee = self.people.employee(user)
            if employee is None:
                self.problems[user] = "no Tribe employee has this e-mail address"
                return None
            link = self.links[user] = UserLink(user, employee, self.people,
                                               self.connector.mailbox, self.pairs)
            self.ops.register(user, lambda action: self.released(user, action))
        return link

    def released(self, user: str, action: str) -> None:
        """A person's ``syncd confirm`` or ``syncd sync start`` of the user's link."""
        if action == "confirm":
            self.confirmed.add(user)
        self.full.add(user)
        self.problems.pop(user, None)
        self.wake()

    def _each(self, users: list[str], work, kind: str = "poll") -> None:
        for user in users:
            link = self._link(user)
            if link is None:
                continue
            stopped, held = self.ops.stopped(user), self.ops.held(user)
            if stopped or held:
                self.problems[user] = stopped or f"held: {held} (fix: syncd confirm " \
                    f"{self.ops.name(user)})"
                continue
            self._round(user, link, work, kind)

    def _round(self, user: str, link: UserLink, work, kind: str) -> None:
        run = self.ops.run(user, kind)
        # a release during the round is for the next one (its wake is set)
        confirmed, link.full = user in self.confirmed, user in self.full
        link.begin(Round(user, self.ops.name(user), run, self.window, self.share,
                         confirmed=confirmed))
        try:
            with run.recording():  # the calls made for records, for syncd explain
                work(link)
                link.commit()
        except Held as exc:  # the run first: what status shows as held has its run
            link.abandon()
            run.finish("needs_confirmation", str(exc))
            self.problems[user] = f"held: {exc} (fix: syncd confirm {self.ops.name(user)})"
            self.ops.hold(user, str(exc), [])
            return
        except LinkStopped as exc:
            link.abandon()
            run.finish("failed", str(exc))
            self.problems[user] = str(exc)
            self.ops.stop(user, str(exc))
            return
        except ConsentRequired as exc:
            link.abandon()
            self.problems[user] = f"consent required: {exc.reason}"
            log.warning("ms365.user_skipped", user=user, reason=exc.reason)
            run.finish("failed", f"consent required: {exc.reason}")
            return
        except BaseException as exc:
            link.abandon()
            run.finish("failed", f"{type(exc).__name__}: {exc}")
            raise
        if confirmed:
            self.confirmed.discard(user)
        if link.full:
            self.full.discard(user)
        self.problems.pop(user, None)
        run.finish()

    def users(self) -> list[str]:
        self.connector.accounts.reload()
        return self.connector.accounts.linked_users()

    def sync_new_users(self) -> list[str]:
        """The initial sync of each linked user that has not had one."""
        new = [u for u in self.users() if not self.pairs.mailbox(u)["initial_done"]]
        self._each(new, lambda link: link.initial_sync(), "initial_sync")
        return new

    def tribe_changed(self, keys: list[str], kind: str = "notification") -> None:
        rels = [r for r in (self.people.get(k) for k in keys) if r is not None]
        self._each(self.users(), lambda link: link.tribe_changed(rels), kind)

    def tribe_all(self) -> None:
        """Compare every relationship with each user's Outlook (those whose Tribe fields
        equal the status cost no Graph request)."""
        self.poll(None)

    def tribe_since(self, since: str) -> None:
        """Only the relationships Tribe changed since ``since`` (a round's cursor)."""
        self.poll(since, catch_up=False)

    def poll(self, since: str | None, kind: str = "poll", catch_up: bool = True,
             keys: list[str] | None = None) -> None:
        """One round per user: Tribe's relationships changed since ``since`` (None: all of
        them) or, for a ``webhook`` round, those Tribe's webhooks named (``keys``); a user a
        person released compares all of them. Then a delta round of each mailbox."""
        users = self.users()
        if kind == "poll":
            changed = self.people.changed_since(since) if since is not None else None
        else:
            changed = self.people.named(keys) if keys else []
        everything: list | None = None

        def work(link: UserLink) -> None:
            nonlocal everything
            if (changed is None or link.full) and everything is None:
                everything = self.people.relationships()
            rels = everything if changed is None or link.full else changed
            if rels:
                link.tribe_changed(rels)
            if catch_up or link.full:
                link.catch_up()

        self._each(users, work, kind)

    def notified(self, user: str) -> None:
        self._each([user], lambda link: link.catch_up(), "notification")

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
