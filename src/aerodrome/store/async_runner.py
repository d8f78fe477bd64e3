"""The runner for PostgreSQL: each unit of work on a pooled asyncpg connection, awaited on the event loop.

A unit of work is the same synchronous `(Connection, ...) -> T` function the SQLite runner calls; SQLAlchemy's
`AsyncConnection.run_sync` runs it in a greenlet, so its every round trip awaits without a thread.

Writes run SERIALIZABLE. The query functions were written for SQLite, where one writer at a time makes every
read-then-write (the next release number, an organisation made once) atomic; with several replicas writing
PostgreSQL, SERIALIZABLE keeps that meaning, and a transaction PostgreSQL aborts as a serialization failure or a
deadlock is run again from the start (the unit touches only the database, so running it again is safe). Reads
run in autocommit: one round trip per statement, no BEGIN and COMMIT around it (a read of several statements
sees each on its own snapshot, as reads racing a write would anyway; a point read, most of them, is exact).

A database that cannot be reached (refused, restarting, shutting down, a connection cut) is UnavailableError:
503 with Fly's error shape. Reads are tried once more on a fresh connection first (a disconnect makes SQLAlchemy
drop every pooled connection opened before it, so no ping is paid on each checkout); a write is not, since a
connection lost during its COMMIT leaves its outcome unknown, and only the client may decide to send it again.
"""

from __future__ import annotations

import asyncio
import random

from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from aerodrome.core import UnavailableError
from aerodrome.store.runner import P, T, Work

#: Times a write aborted by a serialization failure or a deadlock is run again, and the longest pause between.
WRITE_RETRIES = 8
RETRY_PAUSE = 0.02
_RETRIED_STATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected
_UNAVAILABLE_CLASSES = ("08", "57P")  # connection exceptions; admin shutdown, crash shutdown, cannot connect now


class AsyncRunner:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def read(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        for attempt in (1, 2):
            try:
                async with self._engine.connect() as conn:
                    reader = await conn.execution_options(isolation_level="AUTOCOMMIT")
                    return await reader.run_sync(lambda c: work(c, *args, **kwargs))
            except Exception as error:
                if not is_unavailable(error):
                    raise
                if attempt == 2:
                    raise unavailable(error) from error
        raise AssertionError("unreachable")

    async def write(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        for attempt in range(WRITE_RETRIES + 1):
            try:
                async with self._engine.connect() as conn:
                    writer = await conn.execution_options(isolation_level="SERIALIZABLE")
                    return await _in_transaction(writer, lambda c: work(c, *args, **kwargs))
            except exc.DBAPIError as error:
                if _sqlstate(error) in _RETRIED_STATES and attempt < WRITE_RETRIES:
                    await asyncio.sleep(random.uniform(0, RETRY_PAUSE * (attempt + 1)))  # apart, not in step
                    continue
                if is_unavailable(error):
                    raise unavailable(error) from error
                raise
            except Exception as error:
                if is_unavailable(error):
                    raise unavailable(error) from error
                raise
        raise AssertionError("unreachable")

    async def write_one(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """One statement in autocommit: one round trip, no BEGIN and COMMIT. Never run again (see `write`)."""
        try:
            async with self._engine.connect() as conn:
                writer = await conn.execution_options(isolation_level="AUTOCOMMIT")
                return await writer.run_sync(lambda c: work(c, *args, **kwargs))
        except Exception as error:
            if is_unavailable(error):
                raise unavailable(error) from error
            raise

    async def close(self) -> None:
        await self._engine.dispose()


async def _in_transaction(conn: AsyncConnection, run: Work[[], T]) -> T:
    async with conn.begin():
        return await conn.run_sync(run)


def _sqlstate(error: exc.DBAPIError) -> str:
    return str(getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None) or "")


def is_unavailable(error: BaseException) -> bool:
    """Whether `error` says the database could not be reached or went away, not that the work was wrong."""
    if isinstance(error, OSError | TimeoutError | exc.TimeoutError):  # refused, unreachable; pool or connect deadline
        return True
    if isinstance(error, exc.DBAPIError):
        state = _sqlstate(error)
        if error.connection_invalidated or state.startswith(_UNAVAILABLE_CLASSES):
            return True
        return not state and isinstance(error, exc.InterfaceError | exc.OperationalError)  # the driver's own
    return False


def unavailable(error: BaseException) -> UnavailableError:
    reason = getattr(error, "orig", None) or error
    return UnavailableError(f"the database is unavailable ({type(reason).__name__}: {reason}); try again")
