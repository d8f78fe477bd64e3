"""How a unit of work reaches the database.

Every query is a plain function `(Connection, ...) -> T`, the shape `AsyncConnection.run_sync` also accepts, so
an engine with an async driver (PostgreSQL over asyncpg) can get a runner of its own without touching a query.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from sqlalchemy import Connection, Engine

P = ParamSpec("P")
T = TypeVar("T")
Work = Callable[Concatenate[Connection, P], T]


class Runner(Protocol):
    async def read(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T: ...
    async def write(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T: ...
    def close(self) -> None: ...


class SyncRunner:
    """Runs each unit of work in its own transaction on one long-lived connection, on the caller's thread.

    For a local SQLite file a query takes microseconds, less than a hop to a worker thread would cost, so the
    event loop calls it directly. `begin_read`/`begin_write` are the statements that open a transaction when
    the driver leaves that to us (SQLite); None means the engine's own BEGIN.
    """

    def __init__(self, engine: Engine, *, begin_read: str | None = None, begin_write: str | None = None) -> None:
        self._engine = engine
        self._connection = engine.connect()
        self._begin_read = begin_read
        self._begin_write = begin_write

    async def read(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(self._begin_read, work, *args, **kwargs)

    async def write(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(self._begin_write, work, *args, **kwargs)

    def run_sync(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A write outside the event loop, for setup and tests."""
        return self._run(self._begin_write, work, *args, **kwargs)

    def _run(self, begin: str | None, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        connection = self._connection
        with connection.begin():
            if begin is not None:
                connection.exec_driver_sql(begin)
            return work(connection, *args, **kwargs)

    def close(self) -> None:
        self._connection.close()
        self._engine.dispose()
