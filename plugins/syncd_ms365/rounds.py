"""One round of a user's link (an initial sync, a poll, a notification), operated as the
core operates an integration's runs (``syncd.plugin.Links``):

- the round first *plans*: :class:`~syncd_ms365.link.UserLink` compares and collects what
  each side needs (:attr:`Round.creates`, :attr:`Round.updates`) and the delta link it read
  up to, writing nothing;
- the guard (:func:`syncd.plugin.over_share`): a round that would update more than
  ``confirm_share`` of the user's linked Outlook contacts or Tribe relationships at once
  writes nothing, keeps the delta link where it was and holds the link until a person runs
  ``syncd confirm CONNECTION:USER`` (then the next round compares everything again and
  passes the guard once);
- then it writes, each write's result fed to :class:`syncd.plugin.FailFast`: when the first
  ``fail_fast`` writes all fail with the same non-retryable status (a 403 from a mailbox
  whose permission was revoked), :class:`LinkStopped` stops this user's link with one error
  naming the status, the endpoint template and the fix; the other users go on;
- every write is counted per side (``outlook``/``tribe``) and outcome in the round's run
  (``syncd runs CONNECTION:USER``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from syncd.plugin import FailFast, RemoteError, SyncdError, WriteResult, over_share
from syncd_ms365.auth import ConsentRequired

#: The likely fix of a status the probe stops at, for the Outlook side.
FIXES = {403: "the app may no longer write this mailbox's contacts (permission revoked or "
              "narrowed to read): grant Contacts.ReadWrite again, or relink the user with "
              "`syncd ms365 authorize`, then `syncd sync start {link}`",
         401: "the user's token is refused: relink with `syncd ms365 authorize`, then "
              "`syncd sync start {link}`"}


SIDES = {"outlook": "Outlook", "tribe": "Tribe"}


class Held(SyncdError):
    """The guard holds the round: nothing was written."""


class LinkStopped(SyncdError):
    """The round's first writes all failed alike: the user's link stops."""


@dataclass
class Round:
    user: str
    link_name: str
    run: Any
    window: int
    share: float
    #: True once after a person's confirm: the guard lets this round go
    confirmed: bool = False
    creates: list = field(default_factory=list)
    #: (rel, contact, decision, status before) whose decision writes something
    updates: list = field(default_factory=list)
    #: the delta link to keep once the round's writes are done
    delta: str | None = None
    probe: FailFast = field(init=False)

    def __post_init__(self) -> None:
        self.probe = FailFast(self.window)

    def guard(self, linked: int) -> None:
        """Raise :class:`Held` when the round would change too much at once."""
        if self.confirmed:
            return
        changes = {"outlook": sum(1 for _r, _c, d, _s in self.updates if d.to_right),
                   "tribe": sum(1 for _r, _c, d, _s in self.updates if d.to_left)}
        why = over_share(changes, {"outlook": linked, "tribe": linked}, self.share)
        if why:
            raise Held(why)

    def observe(self, side: str, key: str, result: WriteResult) -> None:
        """Count a write and feed the probe; raise :class:`LinkStopped` when it trips."""
        self.run.count(side, result.outcome)
        self.run.answered(key, f"write to {SIDES.get(side, side)}", result)  # syncd explain
        if result.outcome == "failed":
            self.run.error(key, f"{side}: {result.reason}", result.retryable)
        tripped = self.probe.observe([result])
        if tripped:
            raise LinkStopped(f"{self.user}: {tripped}")

    def attempt(self, side: str, key: str, write) -> bool:
        """Run ``write()``; a partner's refusal is a failed write (counted, probed), not
        the end of the round. True when it succeeded."""
        try:
            write()
        except ConsentRequired:
            raise
        except RemoteError as exc:
            self.observe(side, key, failed(key, exc, self.link_name))
            return False
        self.observe(side, key, WriteResult(key, "updated"))
        return True


def failed(key: str, exc: RemoteError, link: str) -> WriteResult:
    fix = FIXES.get(exc.status or 0)
    return WriteResult(key, "failed", str(exc), retryable=exc.retryable, status=exc.status,
                       endpoint=exc.endpoint, detail=exc.detail,
                       fix=fix.format(link=link) if fix else None)


def batch_result(key: str, answer: dict[str, Any], endpoint: str, link: str) -> WriteResult:
    """A ``$batch`` item's answer as a write result."""
    status = int(answer.get("status") or 0)
    if 200 <= status < 300:
        return WriteResult(key, "created")
    error = ((answer.get("body") or {}).get("error") or {}) if isinstance(
        answer.get("body"), dict) else {}
    detail = f"{error.get('code', '')}: {error.get('message', '')}".strip(": ") or None
    fix = FIXES.get(status)
    return WriteResult(key, "failed", f"Graph {endpoint}: {status} {detail or ''}".strip(),
                       retryable=status in (408, 409, 412, 429) or status >= 500,
                       status=status or None, endpoint=endpoint, detail=detail,
                       fix=fix.format(link=link) if fix else None)
