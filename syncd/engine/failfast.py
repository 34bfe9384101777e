"""Fail-fast: a run whose first writes all fail alike stops with one error that says why.

When a destination refuses every write for the same reason (a media type it does not accept,
credentials without the permission, a section that does not exist), writing 1,000 profiles
one by one only makes 1,000 identical failures. So the first ``fail_fast`` writes of a run
(``[integrations.NAME] fail_fast``, default 20, 0 = off) are sent as a probe: when they *all*
fail with the same non-retryable HTTP status, nothing more is sent and

- a full sync (or a daily creation, an overview import) stops, failed, with one error naming
  the status, the endpoint (a path template: no key, no secret), the partner's message and
  the likely fix;
- the real-time path pauses: its events stay in the inbox (not dead-lettered, their
  attempts untouched), ``syncd status`` and the log say why, and it resumes on a reload, a
  ``syncd sync start`` or a restart.

One success, one retryable failure (5xx, timeouts: a partner's bad minute) or a different
status among the first writes, and the run goes on as usual. :func:`verdict` is the pure
decision; :class:`FailFast` keeps one run's probe; :class:`FailFastWrites` is the
coordinator's part (an object it holds).
"""

from __future__ import annotations

import http
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from syncd.connectors.connection import ConnectionProxy
from syncd.engine.jobs import CALL_TIMEOUT
from syncd.engine.progress import Progress
from syncd.engine.rules import Write
from syncd.exceptions import SyncdError
from syncd.records import WriteResult

#: The likely fix per status, when the connector gives none.
FIXES: dict[int, str] = {
    400: "the partner refused the request as malformed: check the field mappings and the "
         "values they carry (the message above names what it refused)",
    401: "check the connection's credentials (client id and secret, API key); they may have "
         "been revoked",
    403: "check the credentials and the API key's permissions: it must be allowed to write "
         "what the config names (keyspace, section, attributes)",
    404: "check the names the connection and the mappings use (e.g. the section, keyspace or "
         "entity set): the account has no such thing",
    405: "the partner does not allow this method here: the connector and the account's API "
         "version differ; report it",
    406: "the partner refused the Accept media type syncd sent: the connector and the account's "
         "API differ; report it",
    409: "the partner reports a conflict for every profile: check the profile key mapping",
    413: "the request body is over the partner's size limit: map fewer or shorter fields",
    415: "the partner refused the media type (Content-Type) syncd sent: the connector and the "
         "account's API differ; upgrade syncd or report it",
    422: "the partner refused the values: check the field mappings and their types",
}


class FailedFast(SyncdError):
    """The first writes of a run all failed alike; the message says why and the fix."""


@dataclass(frozen=True)
class Failure:
    status: int | None
    endpoint: str | None
    detail: str | None
    fix: str | None
    retryable: bool


def failure_of(result: WriteResult) -> Failure | None:
    """The failure a write result reports, None for a success."""
    if result.outcome != "failed":
        return None
    return Failure(result.status, result.endpoint, result.detail or result.reason, result.fix,
                   result.retryable)


def alike(first: Failure, other: Failure) -> bool:
    """Two failures that fail-fast counts as the same: a non-retryable HTTP status, equal."""
    return (not other.retryable and other.status is not None
            and other.status == first.status)


def verdict(failures: Sequence[Failure | None], window: int) -> str | None:
    """The error that stops a run whose first ``window`` writes are ``failures`` (None =
    succeeded), or None when the run goes on (fewer than ``window`` writes, a success, a
    retryable failure, a different status)."""
    if window <= 0 or len(failures) < window:
        return None
    first = failures[0]
    if first is None or not all(f is not None and alike(first, f) for f in failures[:window]):
        return None
    return describe(first, window)


def describe(failure: Failure, count: int) -> str:
    status = failure.status or 0
    try:
        phrase = f" {http.HTTPStatus(status).phrase}"
    except ValueError:
        phrase = ""
    where = f" at {failure.endpoint}" if failure.endpoint else ""
    said = f": {failure.detail}" if failure.detail else ""
    fix = failure.fix or FIXES.get(status) or "check the connection and the mappings"
    return (f"stopped: the first {count} writes all failed with {status}{phrase}{where}"
            f"{said} (fix: {fix})")


class FailFast:
    """The probe of one run: feed it the results of the run's writes, in order."""

    def __init__(self, window: int):
        self.window = max(0, int(window))
        self.seen: list[Failure] = []
        self.tripped: str | None = None
        self.done = self.window == 0  # the probe is over: nothing stops this run any more

    def probe_size(self) -> int:
        """How many writes to send before looking again (0: no probe running)."""
        return 0 if self.done else self.window - len(self.seen)

    def observe(self, results: Sequence[WriteResult]) -> str | None:
        """Take results in; returns the stop error once the probe has tripped."""
        for result in results:
            if self.done:
                break
            failure = failure_of(result)
            if failure is None or (self.seen and not alike(self.seen[0], failure)) \
                    or failure.retryable or failure.status is None:
                self.done = True  # a success or a different failure: the run goes on
                break
            self.seen.append(failure)
            if len(self.seen) >= self.window:
                self.tripped = verdict(self.seen, self.window)
                self.done = True
        return self.tripped


class FailFastWrites:
    """Held by :class:`syncd.engine.coordinator.Coordinator` (``coordinator.failfast``): sends a
    batch's writes through ``destination()`` (the current proxy of the destination
    connection) with the probe first, and pauses the real-time path (in ``progress``) when
    the probe trips. A full sync's writes (``progress.state``) have their own probe, one per
    run. The coordinator sets :attr:`window` again on a reload."""

    def __init__(self, destination: Callable[[], ConnectionProxy], progress: Progress,
                 window: int, log: structlog.stdlib.BoundLogger):
        self.destination = destination
        self.progress = progress
        #: ``[integrations.NAME] fail_fast``: the size of the probe (0 = off).
        self.window = window
        self.log = log
        self._run_probe: FailFast | None = None
        self._realtime_probe: FailFast | None = None

    def _probe(self) -> FailFast:
        if self.progress.state == "full_sync":
            if self._run_probe is None:
                self._run_probe = FailFast(self.window)
            return self._run_probe
        if self._realtime_probe is None:
            self._realtime_probe = FailFast(self.window)
        return self._realtime_probe

    def new_run(self) -> None:
        """A full sync starts: its probe starts anew."""
        self._run_probe = FailFast(self.window)

    def send(self, writes: Sequence[Write], bulk: bool) -> list[WriteResult]:
        """Write ``writes`` through the destination, the probe's share first; raises
        :class:`FailedFast` instead of sending the rest when the probe trips."""
        probe = self._probe()
        if probe.tripped:
            raise FailedFast(probe.tripped)
        results: list[WriteResult] = []
        size = probe.probe_size()
        if size and not bulk and len(writes) > size:  # a bulk import is one request anyway
            results = self._call(writes[:size], bulk)
            if probe.observe(results):
                raise FailedFast(probe.tripped)
            writes = writes[size:]
        more = self._call(writes, bulk)
        if probe.observe(more):
            raise FailedFast(probe.tripped)
        return results + more

    def _call(self, writes: Sequence[Write], bulk: bool) -> list[WriteResult]:
        if not writes:
            return []
        if bulk:
            future = self.destination().bulk_write([w.profile for w in writes])
        else:
            future = self.destination().write_profiles(
                [w.profile for w in writes], [w.profile.key for w in writes if w.known])
        return future.get(timeout=CALL_TIMEOUT)

    # -- the real-time path's pause ---------------------------------------------------------

    def pause(self, reason: str) -> None:
        """Stop applying events: they stay pending in the inbox, untouched."""
        self.progress.paused = reason
        self.progress.last_error = reason
        self.log.error("realtime.paused", reason=reason,
                       resume="reload, `syncd sync start NAME` or a restart")

    def resume(self, why: str) -> bool:
        """Resume a paused real-time path; the probe starts anew. True if it was paused (the
        coordinator then applies the events that waited)."""
        was = self.progress.paused
        self._realtime_probe = None
        if was:
            self.progress.paused = None
            self.log.warning("realtime.resumed", why=why)
        return bool(was)
