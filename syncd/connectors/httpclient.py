"""The HTTP machinery every connector shares: sessions, auth, rate budgets and retries.

A connector builds one :class:`HttpClient` per connection. The client

- keeps one pooled ``requests.Session`` (sized for the connector's concurrency);
- spends a :class:`RateBudget` before each request, so syncd never exceeds a partner's limit;
- honours ``Retry-After`` globally: after a 429 or 503 that names a delay, *no* request of this
  account (from any thread, any client sharing its :class:`Holds`) leaves before the delay has
  passed, checked right before the bytes go out; a request of a narrower ``scope`` (an
  endpoint with a limit of its own) holds only that scope. Each attempt carries an id
  (``X-Syncd-Request``) and the ids of the requests whose ``Retry-After`` it waited out
  (``X-Syncd-Held-By``, ``-`` for none), read at that last check: what its sender knew when
  it decided to send, which the emulators judge instead of arrival times;
- retries 429, 5xx, timeouts and connection errors with exponential back-off and jitter
  (tenacity), and refreshes the token once on a 401;
- never logs a secret: headers and bodies are not logged, only method, path and status; a
  ``requests`` exception becomes a :class:`RemoteError` naming its type and the path, never its
  message (which may quote a header value);
- reports each attempt of a request made for records (:func:`syncd.plugin.for_records`) to
  :mod:`syncd.connectors.calls`, for ``syncd explain``: path as sent without credentials
  (a request sent without the connection's auth, to a pre-signed URL, only by its
  ``endpoint`` template), status, ms, attempt, the wait before it, the partner's message.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import secrets
import time
from collections.abc import Callable
from typing import Any

import requests
import structlog
from requests.adapters import HTTPAdapter
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from syncd import metrics
from syncd.connectors import calls
from syncd.connectors.budgets import HELD_BY as HELD_BY
from syncd.connectors.budgets import REQUEST_ID as REQUEST_ID
from syncd.connectors.budgets import Holds as Holds
from syncd.connectors.budgets import KeyedRateBudget as KeyedRateBudget
from syncd.connectors.budgets import RateBudget as RateBudget
from syncd.connectors.budgets import parse_retry_after as parse_retry_after
from syncd.connectors.httpauth import RETRY_STATUSES as RETRY_STATUSES
from syncd.connectors.httpauth import Auth as Auth
from syncd.connectors.httpauth import ClientCredentials as ClientCredentials
from syncd.connectors.httpauth import StaticToken as StaticToken
from syncd.connectors.httpauth import _error_text, _path_of
from syncd.exceptions import AuthError, RemoteError

log = structlog.get_logger("syncd.connectors.httpclient")

_ID_PREFIX = secrets.token_hex(3)
_ids = itertools.count(1)


def new_request_id() -> str:
    return f"{_ID_PREFIX}-{next(_ids)}"


#: The scope of the request :meth:`HttpClient.send_raw` is sending (for its adapter's gate).
_sending_scope: contextvars.ContextVar[str] = contextvars.ContextVar("syncd_http_scope",
                                                                    default="")


class _HoldingAdapter(HTTPAdapter):
    """The last check of the holds: in the adapter, once the request is prepared (body
    encoded, proxies and settings merged), right before urllib3 writes it; sets
    ``X-Syncd-Held-By`` from that check. It never blocks for a free connection
    (``pool_block=False``: one more is opened), so no wait for a slot follows the check."""

    def __init__(self, holds: Holds, sleep: Callable[[float], None], **kwargs):
        super().__init__(pool_block=False, **kwargs)
        self.holds, self.sleep = holds, sleep

    def send(self, request: requests.PreparedRequest, *args: Any,
             **kwargs: Any) -> requests.Response:
        known = self.holds.wait(_sending_scope.get(), self.sleep)
        request.headers[HELD_BY] = ",".join(known) or "-"
        return super().send(request, *args, **kwargs)


class _Retry(Exception):
    def __init__(self, reason: str, delay: float | None = None, response=None):
        super().__init__(reason)
        self.delay = delay
        self.response = response


class HttpClient:
    """A connection's HTTP client. Thread-safe; one per connection."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: Auth | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        max_attempts: int = 6,
        max_retry_time: float = 300.0,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        budget: RateBudget | None = None,
        pool_size: int = 16,
        user_agent: str = "syncd",
        name: str = "",
        sleep: Callable[[float], None] = time.sleep,
        holds: Holds | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.auth = auth or Auth()
        self.timeout = (connect_timeout, timeout)
        self.max_attempts = max_attempts
        self.max_retry_time = max_retry_time
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.budget = budget
        self.name = name
        metrics.budget(name, budget.rate if budget is not None else None)
        self._sleep = sleep
        #: Retry-After holds; clients of one account share one (pass ``holds=``).
        self.holds = holds if holds is not None else Holds()
        self.session = requests.Session()
        adapter = _HoldingAdapter(self.holds, sleep, pool_connections=4,
                                  pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = user_agent
        self.requests_sent = 0
        self.retries = 0

    def close(self) -> None:
        self.session.close()

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    # -- the gate that honours Retry-After for every thread of this account ------------------

    def _wait_gate(self, scope: str = "") -> list[str]:
        return self.holds.wait(scope, self._sleep)

    def _hold(self, seconds: float, scope: str = "", by: str = "") -> None:
        self.holds.hold(seconds, scope, by)

    # -- sending -----------------------------------------------------------------------------

    def send_raw(self, method: str, url: str, *, auth: bool = True, scope: str = "",
                 **kwargs) -> requests.Response:
        """One attempt: waits for the holds and the budget, sends, returns whatever came back.

        The holds of ``scope`` (and the account's) are checked again after the budget and the
        token, and a last time by the session's adapter right before the bytes go out: a 429
        that another thread received while this one waited or prepared holds this request
        too. A 429 or 503 with ``Retry-After`` holds ``scope`` ("" = every request of the
        account), recording this attempt's id as the hold's."""
        started = time.monotonic()
        self._wait_gate(scope)
        held = time.monotonic() - started
        if self.budget is not None:
            budget_from = time.monotonic()
            self.budget.acquire()
            metrics.http_waited(self.name, "rate_budget", time.monotonic() - budget_from)
        headers = dict(kwargs.pop("headers", None) or {})
        if auth:
            headers.update(self.auth.headers(self))
        kwargs.setdefault("timeout", self.timeout)
        request_id = headers[REQUEST_ID] = new_request_id()
        gate_from = time.monotonic()
        self._wait_gate(scope)  # the adapter checks once more, once the request is prepared
        sent = time.monotonic()
        self.requests_sent += 1
        token = _sending_scope.set(scope)
        try:
            # a pre-signed URL (no auth) is a credential: an error names it by a placeholder
            with transport_errors(method, url if auth else "/{pre-signed URL}"):
                response = self.session.request(method, self.url(url), headers=headers, **kwargs)
        except BaseException:
            metrics.http_sent(self.name, "error", time.monotonic() - sent)
            raise
        finally:
            _sending_scope.reset(token)
        answered = time.monotonic()
        if response.status_code in (429, 503):  # the hold first: other threads wait on it
            delay = parse_retry_after(response.headers.get("Retry-After"))
            if delay is not None:
                self._hold(delay, scope, request_id)
        metrics.http_sent(self.name, response.status_code, answered - sent)
        metrics.http_waited(self.name, "retry_after", held + sent - gate_from)
        return response

    def request(
        self,
        method: str,
        path: str,
        *,
        ok: tuple[int, ...] = (),
        retry_statuses: frozenset[int] = RETRY_STATUSES,
        attempts: int | None = None,
        endpoint: str | None = None,
        **kwargs,
    ) -> requests.Response:
        """Send with retries. Returns the response for any status below 400 or listed in ``ok``;
        raises :class:`RemoteError` for any other, after retrying what can be retried.
        ``attempts`` (default ``max_attempts``): 1 for a write that must not be sent again
        blindly once its answer was lost (the caller checks what was applied first).
        ``endpoint`` names the request in errors as a path template (``/profiles/{key}``):
        default, the path without its query."""
        attempts = attempts or self.max_attempts
        # a request without the connection's auth goes to a pre-signed URL: that URL is a
        # credential, so what syncd explain shows of it is its template only
        shown = (endpoint or "{pre-signed URL}") if kwargs.get("auth") is False else None
        endpoint = f"{method} {endpoint or _path_of(path)}"

        refreshed = False
        number, ended = 0, 0.0

        def attempt() -> requests.Response:
            nonlocal refreshed, number, ended
            number += 1
            keep, began = calls.wanted(), time.monotonic()
            waited = began - ended if number > 1 else 0.0
            try:
                response = self.send_raw(method, path, **kwargs)
            except RemoteError as exc:  # transport errors (see transport_errors), auth
                ended = time.monotonic()
                if keep and not isinstance(exc, AuthError):  # it was sent: no answer came
                    calls.report(calls.Exchange(
                        method, shown or calls.redact(path), None, round((ended - began) * 1000),
                        number, round(waited, 3), None, calls.truncate(str(exc)), time.time()))
                if exc.retryable:
                    raise _Retry(str(exc)) from None
                raise
            ended = time.monotonic()
            if keep:
                self._report(method, shown, path, response, number, waited)
            status = response.status_code
            if status < 400 or status in ok:
                return response
            if status == 401 and not refreshed:
                refreshed = True
                self.auth.invalidate()
                raise _Retry("401, token refreshed", delay=0.0)
            if status in retry_statuses:
                delay = parse_retry_after(response.headers.get("Retry-After"))
                raise _Retry(f"HTTP {status}", delay=delay, response=response)
            detail = _error_text(response)
            raise RemoteError(
                f"{method} {shown or _path_of(path)} failed with {status}: {detail}",
                status=status,
                retryable=False,
                endpoint=endpoint,
                detail=detail,
            )

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, _Retry) and exc.delay is not None:
                metrics.http_waited(self.name, "retry_after", exc.delay)
                return exc.delay  # the gate already holds every thread until then
            return wait_random_exponential(multiplier=self.backoff, max=self.max_backoff)(state)

        def before_sleep(state: RetryCallState) -> None:
            self.retries += 1
            exc = state.outcome.exception() if state.outcome else None
            log.debug(
                "http.retry",
                connection=self.name,
                method=method,
                path=shown or _path_of(path),
                reason=str(exc),
                attempt=state.attempt_number,
            )

        retrying = Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, _Retry)),
            stop=stop_after_attempt(attempts) | stop_after_delay(self.max_retry_time),
            wait=wait,
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Retry as exc:
            status = exc.response.status_code if exc.response is not None else None
            detail = _error_text(exc.response) if exc.response is not None else str(exc)
            raise RemoteError(
                f"{method} {shown or _path_of(path)} still failing after {attempts} attempt(s): "
                f"{detail}",
                status=status,
                retryable=True,
                endpoint=endpoint,
                detail=detail,
            ) from None

    @staticmethod
    def _report(method: str, shown: str | None, path: str, response: requests.Response,
                number: int, waited: float) -> None:
        """Report an attempt answered: ``shown`` (a pre-signed URL's template), else the
        path as sent (``path`` when the answer lacks its request), redacted."""
        status = response.status_code
        if shown is None:
            shown = calls.redact(getattr(response.request, "path_url", None) or path)
        calls.report(calls.Exchange(
            method, shown, status,
            round(response.elapsed.total_seconds() * 1000), number, round(waited, 3),
            parse_retry_after(response.headers.get("Retry-After")) if status >= 400 else None,
            calls.truncate(_error_text(response)) if status >= 400 else None, time.time()))

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs) -> requests.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs) -> requests.Response:
        return self.request("DELETE", path, **kwargs)


#: Transport errors worth another attempt (the connection broke or timed out).
TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


def describe_request_error(exc: BaseException, method: str, url: str) -> str:
    """``"GET /path: ConnectTimeout"``: the type of a ``requests`` exception and the path,
    never its message (it may quote a header value, i.e. a token, or a query string)."""
    return f"{method} {_path_of(url)}: {type(exc).__name__}"


@contextlib.contextmanager
def transport_errors(method: str, url: str):
    """Turn any ``requests`` exception raised inside into a :class:`RemoteError` that names
    its type and the path only (retryable when the connection broke or timed out). The
    original is dropped (``from None``), so neither a log's traceback nor ``runs.error`` nor
    ``syncd status`` can show its message."""
    try:
        yield
    except requests.RequestException as exc:
        raise RemoteError(describe_request_error(exc, method, url),
                          retryable=isinstance(exc, TRANSIENT)) from None
