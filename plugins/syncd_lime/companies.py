"""The companies of the persons read, for ``<company_relation>.<property>`` field paths.

Read as few times as Lime allows (its budget is 3,000 requests per 5 minutes per IP,
apis.md 2.5): the companies a page of persons names are read with one ``min-_id``/``max-_id``
list when their ids lie close together (filters on system fields are an INFER, 2.2: a
server that refuses them with 400 is asked company by company from then on), else one
``GET …/company/{id}/`` each, concurrently; each is kept ``company_cache_seconds`` (a
company webhook drops it at once). A company missing from the answer is gone: its fields
are absent from the record, as for a 404.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from structlog.typing import FilteringBoundLogger

from syncd.plugin import RemoteError

if TYPE_CHECKING:
    from syncd_lime.client import LimeClient

#: Ids read with one range list when their span is at most this many times their number.
RANGE_DENSITY = 4
#: Most companies kept; the cache is emptied beyond it.
CACHE_LIMIT = 50_000


class Companies:
    """Mixed into the connector (which provides ``opts``, ``client``, ``log``, ``pool_map``)."""

    opts: dict[str, Any]
    client: LimeClient
    log: FilteringBoundLogger

    if TYPE_CHECKING:
        def pool_map(self, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]: ...

    def _init_companies(self) -> None:
        self._companies: dict[int, tuple[float, dict[str, Any] | None]] = {}
        self._companies_lock = threading.Lock()
        #: False once Lime refused a filter on ``_id``
        self._id_ranges = True

    def forget_company(self, cid: int) -> None:
        with self._companies_lock:
            self._companies.pop(cid, None)

    def company_values(self, ids: Iterable[int]) -> dict[int, dict[str, Any] | None]:
        """Company id -> its object (None when it does not exist)."""
        ids = set(ids)
        now = time.monotonic()
        ttl = float(self.opts["company_cache_seconds"])
        out: dict[int, dict[str, Any] | None] = {}
        with self._companies_lock:
            for cid in ids:
                hit = self._companies.get(cid)
                if hit is not None and hit[0] > now:
                    out[cid] = hit[1]
        todo = sorted(ids - set(out))
        got = self._read_companies(todo) if todo else {}
        with self._companies_lock:
            if len(self._companies) > CACHE_LIMIT:
                self._companies.clear()
            for cid in todo:
                out[cid] = got.get(cid)
                if ttl > 0:
                    self._companies[cid] = (now + ttl, out[cid])
        return out

    def _read_companies(self, ids: list[int]) -> dict[int, dict[str, Any] | None]:
        kind = self.opts["company_limetype"]
        if self._id_ranges and len(ids) > 2 and ids[-1] - ids[0] + 1 <= RANGE_DENSITY * len(ids):
            try:
                rows = self.client.iterate(kind, page_size=500,
                                           filters=[("min-_id", ids[0]), ("max-_id", ids[-1])])
                return {int(r["_id"]): dict(r) for r in rows}
            except RemoteError as exc:
                if exc.status != 400:
                    raise
                self._id_ranges = False
                self.log.info("lime.id_ranges_refused", fallback="one request per company",
                              error=str(exc))
        found = self.pool_map(lambda c: self.client.get(kind, c), ids)
        return dict(zip(ids, found, strict=True))
