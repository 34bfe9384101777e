"""The HTTP calls a connector makes for records, kept for ``syncd explain``.

Three parts, none of which a connector needs to know beyond :func:`for_records`:

- :class:`~syncd.connectors.httpclient.HttpClient` reports every attempt of a request to
  :func:`report` as an :class:`Exchange`: method, path as sent with credentials removed
  (:func:`redact`), status, milliseconds, attempt number, the seconds waited before it (a
  ``Retry-After`` or back-off), the ``Retry-After`` its answer named, the partner's error
  message, truncated. Never a header, a body or a host.
- A connector says which record(s) its calls are for with ``with for_records(ids):`` (public
  in :mod:`syncd.plugin`); a context variable, so the worker pools carry it
  (:func:`carry_context`, used by :meth:`syncd.plugin.PooledClient.pool_map`). A call made
  outside any ``for_records`` (a token, definitions, a page of a full sync) is not kept.
- The connection actor records its per-record capabilities (read-backs, writes, deletes,
  imports, consent write-back) into its :class:`CallBuffer` (:func:`recording`); the
  coordinator's journal :func:`take`\\s the calls of the records it journals right after the
  capability answered. A buffer is bounded (entries and age): calls nobody took are dropped.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar, copy_context
from dataclasses import asdict, dataclass
from typing import Any, ParamSpec, TypeVar
from urllib.parse import parse_qsl, unquote_plus

P = ParamSpec("P")
R = TypeVar("R")

#: Longest path and error message kept.
PATH_LIMIT = 300
ERROR_LIMIT = 200
#: Query parameters whose value is a credential (pre-signed URLs, API keys in the query).
CREDENTIAL = re.compile(r"token|secret|passw|pwd|key|sig|credential|auth|session|code",
                        re.IGNORECASE)

_records: ContextVar[tuple[str, ...] | None] = ContextVar("syncd_call_records", default=None)
_sink: ContextVar[CallBuffer | None] = ContextVar("syncd_call_sink", default=None)


@dataclass(frozen=True)
class Exchange:
    """One attempt of one request and its answer (``status`` None: no answer came)."""

    method: str
    path: str
    status: int | None
    ms: int
    attempt: int = 1
    waited: float = 0.0  # seconds waited before this attempt (Retry-After, back-off)
    retry_after: float | None = None  # what the answer asked to wait
    error: str | None = None
    at: float = 0.0

    def data(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items()
                if v is not None and not (k == "waited" and not v)}


# -- what connectors use ----------------------------------------------------------------------


@contextlib.contextmanager
def for_records(ids: Iterable[Any]) -> Iterator[None]:
    """The HTTP calls made inside are for these records (their ids, as the core knows them:
    ``Record.id``, ``Profile.key``, the keys given to ``delete_profiles``). Nested: the
    innermost wins; ``for_records([])`` marks calls as for no record."""
    token = _records.set(tuple(dict.fromkeys(str(i) for i in ids)))
    try:
        yield
    finally:
        _records.reset(token)


def carry_context(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn``, run in a copy of the caller's context (its :func:`for_records`) wherever it
    is called: wrap what a worker pool runs (``pool.submit(carry_context(fn), ...)``)."""
    context = copy_context()

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return context.copy().run(fn, *args, **kwargs)

    return run


def report_call(method: str, path: str, status: int | None, ms: int, *, attempt: int = 1,
                waited: float = 0.0, retry_after: float | None = None,
                error: str | None = None) -> None:
    """For a connector whose HTTP client is its own (not :class:`syncd.plugin.HttpClient`):
    report one attempt of a request made inside :func:`for_records`, so ``syncd explain``
    shows it. ``path`` as sent (the host and credentials in the query are removed here);
    never a header or a body. Nothing is kept outside a ``for_records``."""
    if not wanted():
        return
    report(Exchange(method, redact(path), status, int(ms), attempt, round(waited, 3),
                    retry_after, truncate(error), time.time()))


# -- what the HTTP client uses ----------------------------------------------------------------


def wanted() -> bool:
    """Whether an exchange made now would be kept (saves the client the work otherwise)."""
    return bool(_records.get()) and _sink.get() is not None


def report(exchange: Exchange) -> None:
    records, sink = _records.get(), _sink.get()
    if records and sink is not None:
        sink.add(records, exchange)


def redact(path_and_query: str) -> str:
    """A path as sent, decoded for reading, without host and with the value of every query
    parameter that names a credential replaced by ``***``; truncated."""
    path, _, query = path_and_query.partition("?")
    if "://" in path:
        rest = path.split("://", 1)[1]
        path = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
    out = unquote_plus(path)
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        out += "?" + "&".join(f"{k}={'***' if CREDENTIAL.search(k) else v}" for k, v in pairs)
    return out if len(out) <= PATH_LIMIT else out[:PATH_LIMIT - 3] + "..."


def truncate(text: str | None, limit: int = ERROR_LIMIT) -> str | None:
    if not text:
        return None
    return text if len(text) <= limit else text[:limit - 3] + "..."


# -- what the connection actor and the journal use ---------------------------------------------


class CallBuffer:
    """The calls made for records, until the journal takes them. Thread-safe, bounded."""

    def __init__(self, limit: int = 20_000, max_age: float = 900.0):
        self.limit = limit
        self.max_age = max_age
        self._lock = threading.Lock()
        self._next = 0
        #: id -> (exchange, the records it was for, the records not yet taken)
        self._calls: OrderedDict[int, tuple[Exchange, tuple[str, ...], set[str]]] = \
            OrderedDict()
        self._by_record: dict[str, list[int]] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def add(self, records: tuple[str, ...], exchange: Exchange) -> None:
        with self._lock:
            self._next += 1
            self._calls[self._next] = (exchange, records, set(records))
            for rid in records:
                self._by_record.setdefault(rid, []).append(self._next)
            old = time.time() - self.max_age
            while self._calls and (len(self._calls) > self.limit
                                   or next(iter(self._calls.values()))[0].at < old):
                _, (_, gone, _) = self._calls.popitem(last=False)
                for rid in gone:
                    ids = [i for i in self._by_record.get(rid, ()) if i in self._calls]
                    if ids:
                        self._by_record[rid] = ids
                    else:
                        self._by_record.pop(rid, None)

    def waiting(self) -> list[str]:
        """The records whose calls nobody took yet."""
        with self._lock:
            return list(self._by_record)

    def take(self, ids: Iterable[str]) -> list[tuple[Exchange, tuple[str, ...]]]:
        """The calls made for any of ``ids`` (oldest first), each with every record it was
        for; they are not given again for these ids."""
        found: dict[int, tuple[Exchange, tuple[str, ...]]] = {}
        with self._lock:
            for rid in dict.fromkeys(ids):
                for cid in self._by_record.pop(rid, ()):
                    entry = self._calls.get(cid)
                    if entry is None:
                        continue
                    found[cid] = entry[0], entry[1]
                    entry[2].discard(rid)
                    if not entry[2]:
                        del self._calls[cid]
        return [found[c] for c in sorted(found)]


_buffers: dict[str, CallBuffer] = {}
_buffers_lock = threading.Lock()


def buffer(owner: str) -> CallBuffer:
    """The buffer of a connection actor (by its URN), made on first use."""
    with _buffers_lock:
        return _buffers.setdefault(owner, CallBuffer())


def forget(owner: str) -> None:
    with _buffers_lock:
        _buffers.pop(owner, None)


@contextlib.contextmanager
def recording(owner: str) -> Iterator[None]:
    """Keep the calls made inside for records in ``owner``'s buffer."""
    token = _sink.set(buffer(owner))
    try:
        yield
    finally:
        _sink.reset(token)


def take(connection: Any, ids: Iterable[str]) -> list[tuple[Exchange, tuple[str, ...]]]:
    """What :meth:`CallBuffer.take` gives from the buffer of a connection proxy's actor, or
    of the buffer named ``connection`` when it is a string (a link's run); nothing for
    anything else, e.g. a test's stand-in."""
    owner = connection if isinstance(connection, str) else \
        getattr(getattr(connection, "actor_ref", None), "actor_urn", None)
    if not isinstance(owner, str):
        return []
    with _buffers_lock:
        found = _buffers.get(owner)
    return found.take(ids) if found is not None else []
