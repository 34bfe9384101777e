"""The life cycle most HTTP connectors share: one API client and one worker pool per
connection, made on ``start`` (or on first use) and closed on ``stop``.

A connector mixes :class:`PooledClient` in before :class:`~syncd.connectors.connector.Connector`
and says how its client is made (``make_client``) and how many workers it runs
(``opts["concurrency"]``)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from syncd.connectors.calls import carry_context


class Closable(Protocol):
    def close(self) -> None: ...


#: The connector's API client: anything with ``close()``.
C = TypeVar("C", bound=Closable)


class PooledClient(Generic[C]):
    kind: ClassVar[str]
    name: str
    opts: dict[str, Any]
    _client: C | None = None
    _pool: ThreadPoolExecutor | None = None

    def make_client(self) -> C:
        """The connection's API client (called once per start)."""
        raise NotImplementedError

    def start(self) -> None:
        if self._client is None:
            self._client = self.make_client()
            self._pool = ThreadPoolExecutor(int(self.opts["concurrency"]),
                                            thread_name_prefix=f"{self.kind}-{self.name}")

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def client(self) -> C:
        if self._client is None:
            self.start()
        assert self._client is not None
        return self._client

    def pool_map(self, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        """``fn`` over ``items`` on the pool (in order), or inline for one item or no pool;
        on the pool in the caller's context (its :func:`syncd.plugin.for_records`)."""
        if len(items) <= 1 or self._pool is None:
            return [fn(i) for i in items]
        return list(self._pool.map(carry_context(fn), items))

