"""The life cycle most HTTP connectors share: one API client and one worker pool per lane of
a connection, made on ``start`` (or on first use) and closed on ``stop``.

A connector mixes :class:`PooledClient` in before :class:`~syncd.connectors.connector.Connector`
and says how its client is made (``make_client``) and how many workers it runs
(``opts["concurrency"]``). The client is one for the connection (both lanes share it, its
budget, holds and token); the pool is the lane's own (:class:`syncd.connectors.lanes.LanePools`),
so a real-time call never queues behind a bulk batch's tasks."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from syncd.connectors.calls import carry_context
from syncd.connectors.lanes import LanePools


class Closable(Protocol):
    def close(self) -> None: ...


#: The connector's API client: anything with ``close()``.
C = TypeVar("C", bound=Closable)

_start_lock = threading.Lock()


class PooledClient(Generic[C]):
    kind: ClassVar[str]
    name: str
    opts: dict[str, Any]
    _client: C | None = None
    _pools: LanePools | None = None

    def make_client(self) -> C:
        """The connection's API client (called once per start)."""
        raise NotImplementedError

    def start(self) -> None:
        with _start_lock:
            if self._client is None:
                self._client = self.make_client()
                self._pools = LanePools(int(self.opts["concurrency"]),
                                        f"{self.kind}-{self.name}")

    def stop(self) -> None:
        with _start_lock:
            pools, client = self._pools, self._client
            self._pools, self._client = None, None
        if pools is not None:
            pools.shutdown()
        if client is not None:
            client.close()

    @property
    def client(self) -> C:
        if self._client is None:
            self.start()
        assert self._client is not None
        return self._client

    @property
    def _pool(self) -> ThreadPoolExecutor | None:
        """The worker pool of the lane the caller runs in (None before ``start``)."""
        pools = self._pools
        return pools.get() if pools is not None else None

    def pool_map(self, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        """``fn`` over ``items`` on the lane's pool (in order), or inline for one item or no
        pool; on the pool in the caller's context (its :func:`syncd.plugin.for_records` and
        lane)."""
        if len(items) <= 1:
            return [fn(i) for i in items]
        pool = self._pool
        if pool is None:
            return [fn(i) for i in items]
        return list(pool.map(carry_context(fn), items))
