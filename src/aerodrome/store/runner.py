"""How a unit of work reaches the database.

Every query is a plain function `(Connection, ...) -> T`, the shape `AsyncConnection.run_sync` also accepts, so
an engine with an async driver (PostgreSQL over asyncpg) can get a runner of its own without touching a query.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from sqlalchemy import Connection, Engine

P = ParamSpec("P")
T = TypeVar("T")
Work = Callable[Concatenate[Connection, P], T]


class Runner(Protocol):
    async def read(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T: ...
    async def write(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T: ...
    def close(self) -> None: ...


class SyncRunner:
    """Runs each unit of work in its own transaction, on the caller's thread.

    For a local SQLite file a query takes microseconds, less than a hop to a worker thread would cost, so the
    event loop calls it directly. Two long-lived connections, one for reads and one for writes, save a pool
    checkout per call and let the writer carry its own options (SQLite's `BEGIN IMMEDIATE`).
    """

    def __init__(self, engine: Engine, *, write_options: Mapping[str, Any] | None = None) -> None:
        self._engine = engine
        self._reader = engine.connect()
        self._writer = engine.connect().execution_options(**(write_options or {}))

    async def read(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        with self._reader.begin():
            return work(self._reader, *args, **kwargs)

    async def write(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        with self._writer.begin():
            return work(self._writer, *args, **kwargs)

    def close(self) -> None:
        self._reader.close()
        self._writer.close()
        self._engine.dispose()
