"""Paging through an OData collection of Tribe CRM, safe against what the docs leave open.

apis.md 1.5: the docs name no page size, cap or ``@odata.nextLink`` behaviour [GAP]; every
vendor client pages with ``$top``/``$skip`` [CODE]. So syncd

- pages on by the rows it *received*: the next ``$skip`` is the number of rows received so
  far, never ``$skip + $top`` (a server may cap a page below ``$top``);
- takes a short page as *not* the end: only an empty page ends a collection (a server that
  caps pages and sends no ``nextLink`` still gets read whole, at the cost of one request per
  run, the final empty page);
- follows ``@odata.nextLink`` when the server sends one, but only to the configured API's
  scheme, host and port (the bearer token goes with it); a link elsewhere fails the read;
- fails, instead of looping, when a page starts with the row the previous page started with
  (a server that ignores ``$skip``), or a ``nextLink`` repeats itself.

:class:`PageState` is where a read stands; it round-trips through the coordinator's opaque
cursor (:meth:`PageState.encode` / :meth:`PageState.decode`).
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
    #: Rows received so far: the next ``$skip``.
    skip: int = 0
    #: The ID of the first row of the first page (None before it): a server that ignores
    #: ``$skip`` answers every page with it. (Not the page before's: a collection that grows
    #: while it is read can legitimately start a page with the row that started the page
    #: before, e.g. after a short last page and as many rows created ahead of it.)
    first: str | None = None
    #: A ``@odata.nextLink`` to follow next instead of a ``$skip`` query.
    link: str | None = None

    def encode(self) -> str:
        if self.first is None and self.link is None:
            return str(self.skip)
        return json.dumps({"skip": self.skip, "first": self.first, "link": self.link},
                          separators=(",", ":"))

    @classmethod
    def decode(cls, cursor: str | None) -> PageState:
        """A state from a cursor; also reads the cursors of earlier versions (``"400"``, and
        ``"<window end>|<still expected>|<nextLink>"``, resumed by ``$skip``)."""
        if not cursor:
            return cls()
        if cursor.startswith("{"):
            data = json.loads(cursor)
            return cls(int(data.get("skip") or 0), data.get("first"), data.get("link"))
        if "|" in cursor:
            end, remaining, _ = cursor.split("|", 2)
            return cls(max(0, int(end) - int(remaining)))
        return cls(int(cursor))


def row_id(row: Any) -> str | None:
    if isinstance(row, Mapping) and row.get("ID") is not None:
        return str(row["ID"]).lower()
    return None


def next_page(state: PageState, query: Callable[[int], dict[str, Any]],
              follow: Callable[[str], dict[str, Any]], what: str = "the collection"
              ) -> tuple[list[dict[str, Any]], dict[str, Any], PageState | None]:
    """Read one page from ``state``: ``query(skip)`` asks with ``$skip``, ``follow(link)``
    follows a nextLink. Returns the rows, the whole answer and the next state (None: the
    collection is read to its end)."""
    data = follow(state.link) if state.link else query(state.skip)
    if not isinstance(data, Mapping):
        raise PagingError(f"reading {what}: the answer is not an OData collection")
    rows = data.get("value")
    if rows is None:
        rows = []
    if not isinstance(rows, list):
        raise PagingError(f"reading {what}: 'value' is not a list")
    first = row_id(rows[0]) if rows else None
    if first is not None and state.first is not None and first == state.first:
        how = "the nextLink" if state.link else f"$skip={state.skip}"
        raise PagingError(
            f"reading {what}: the server answered {how} with the same first row ({first}) as "
            f"the first page: it ignores $skip, and reading on would read the same rows "
            f"forever (fix: check base_url points at the Tribe OData API; a proxy may drop "
            f"query options)")
    received = state.skip + len(rows)
    link = data.get("@odata.nextLink")
    if link:
        if not isinstance(link, str):
            raise PagingError(f"reading {what}: @odata.nextLink is not a URL")
        if link == state.link:
            raise PagingError(f"reading {what}: the server's @odata.nextLink points at the "
                              f"page it came with; reading on would loop")
        return rows, dict(data), PageState(received, state.first or first, link)
    if not rows:
        return rows, dict(data), None
    return rows, dict(data), PageState(received, state.first or first, None)
