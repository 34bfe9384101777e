"""Paging through a HAL list of Lime limeobjects, safe against what the docs leave open.

apis.md 2.2: clients page on ``_links.next`` until it is absent [CODE]; the largest
``_limit`` a server serves is a GAP. So syncd

- follows ``_links.next`` while the server sends one (only to the configured API's scheme,
  host and port: the API key goes with it);
- never takes a short page alone as the end: without a ``next`` it asks on with
  ``_offset`` = the rows *received* so far, and only an empty page ends the list (a server
  that caps pages and sends no ``next`` is still read whole, at the cost of one request per
  listing: the final empty page). Once a server has been seen sending ``next`` links
  (``trust_no_next``, learnt by the client), a page without one is the end, as the docs
  say, and that request is saved;
- fails instead of looping when a page starts with the row the page before started with (a
  server that ignores ``_offset``) or a ``next`` link points at the page it came with.

:class:`PageState` round-trips through the coordinator's opaque cursor.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from syncd.plugin import RemoteError


class PagingError(RemoteError):
    """The server's paging cannot be trusted (not retryable: retrying reads the same)."""

    def __init__(self, message: str):
        super().__init__(message, retryable=False)


@dataclass(frozen=True)
class PageState:
    offset: int = 0  # rows received so far: the next ``_offset``
    first: str | None = None  # the ``_id`` of the first row of the page before
    link: str | None = None  # a ``_links.next`` href to follow instead

    def encode(self) -> str:
        return json.dumps({"offset": self.offset, "first": self.first, "link": self.link},
                          separators=(",", ":"))

    @classmethod
    def decode(cls, cursor: str | None) -> PageState:
        if not cursor:
            return cls()
        data = json.loads(cursor)
        return cls(int(data.get("offset") or 0), data.get("first"), data.get("link"))


def rows_of(data: Any, what: str) -> list[dict[str, Any]]:
    """``_embedded.limeobjects`` of a HAL answer (an answer without ``_embedded`` has none)."""
    if not isinstance(data, Mapping):
        raise PagingError(f"reading {what}: the answer is not a HAL object")
    embedded = data.get("_embedded") or {}
    rows = embedded.get("limeobjects") if isinstance(embedded, Mapping) else None
    if rows is None:
        rows = []
    if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
        raise PagingError(f"reading {what}: _embedded.limeobjects is not a list of objects")
    return rows


def next_link(data: Mapping[str, Any]) -> str | None:
    links = data.get("_links") or {}
    nxt = links.get("next") if isinstance(links, Mapping) else None
    href = nxt.get("href") if isinstance(nxt, Mapping) else nxt
    return href if isinstance(href, str) and href else None


def next_page(state: PageState, query: Callable[[int], Any], follow: Callable[[str], Any],
              what: str = "the list", trust_no_next: bool = False
              ) -> tuple[list[dict[str, Any]], PageState | None]:
    """One page from ``state``: the rows and the next state (None: read to its end)."""
    data = follow(state.link) if state.link else query(state.offset)
    rows = rows_of(data, what)
    first = str(rows[0].get("_id")) if rows else None
    if first is not None and state.first is not None and first == state.first:
        how = "the next link" if state.link else f"_offset={state.offset}"
        raise PagingError(
            f"reading {what}: the server answered {how} with the same first object "
            f"({first}) as the page before: it ignores _offset, and reading on would read "
            f"the same objects forever (fix: check base_url points at the Lime API; a proxy "
            f"may drop query parameters)")
    received = state.offset + len(rows)
    link = next_link(data)
    if link:
        if link == state.link:
            raise PagingError(f"reading {what}: the server's next link points at the page it "
                              f"came with; reading on would loop")
        return rows, PageState(received, first or state.first, link)
    if not rows or trust_no_next:
        return rows, None
    return rows, PageState(received, first, None)
