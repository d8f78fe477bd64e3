"""How a unit of work reaches the database.

Every query is a plain function `(Connection, ...) -> T`, the shape `AsyncConnection.run_sync` also accepts, so
PostgreSQL over asyncpg has a runner of its own (`async_runner.AsyncRunner`) without touching a query.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from sqlalchemy import Connection, Engine

from aerodrome.core import InsufficientStorageError, is_out_of_space

P = ParamSpec("P")
T = TypeVar("T")
Work = Callable[Concatenate[Connection, P], T]


class Runner(Protocol):
    async def read(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T: ...
    async def write(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T: ...
    async def write_one(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A write of one statement, atomic by itself, which needs no transaction around it."""
        ...

    async def close(self) -> None: ...


class _Write:
    """One queued unit of work, and the future its caller awaits until the work is committed."""

    __slots__ = ("error", "future", "result", "run")

    def __init__(self, run: Callable[[Connection], Any], future: asyncio.Future[Any]) -> None:
        self.run = run
        self.future = future
        self.result: Any = None
        self.error: Exception | None = None


class SyncRunner:
    """Runs reads on the caller's thread, and commits writes in groups on a thread of their own.

    For a local SQLite file a read takes microseconds, less than a hop to a worker thread would cost, so the
    event loop calls it directly. Two long-lived connections, one for reads and one for writes, save a pool
    checkout per call and let the writer carry its own options (SQLite's `BEGIN IMMEDIATE`).

    Group commit: a commit waits for its fsync, so it runs on the writer thread while the event loop goes on;
    the writes queued meanwhile are committed together next, in one transaction and one fsync. When a unit of
    work fails, the batch is rolled back and run again with each unit in a savepoint, so the failed one is
    undone alone; every caller hears back only once the commit that holds its write is on disk.
    """

    def __init__(self, engine: Engine, *, write_options: Mapping[str, Any] | None = None) -> None:
        self._engine = engine
        self._reader = engine.connect()
        self._writer = engine.connect().execution_options(**(write_options or {}))
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        self._queued: list[_Write] = []
        self._committing = False

    async def read(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        with self._reader.begin():
            return work(self._reader, *args, **kwargs)

    async def write(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        queued = _Write(lambda conn: work(conn, *args, **kwargs), loop.create_future())
        self._queued.append(queued)
        if not self._committing:
            self._committing = True
            loop.call_soon(self._commit_next, loop)  # after the rest of this round has queued its writes too
        try:
            result: T = await queued.future
        except Exception as exc:
            if is_out_of_space(exc):  # the transaction was rolled back: nothing of it is on disk
                raise InsufficientStorageError("writing to the database") from exc
            raise
        return result

    async def write_one(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.write(work, *args, **kwargs)  # group commit: one fsync for the writes queued with it

    def _commit_next(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._queued = self._queued, []
        done = loop.run_in_executor(self._thread, self._commit, batch)
        done.add_done_callback(lambda _: self._answer(loop, batch))

    def _answer(self, loop: asyncio.AbstractEventLoop, batch: list[_Write]) -> None:
        for queued in batch:
            if queued.future.done():  # its caller went away; the write stands all the same
                continue
            if queued.error is not None:
                queued.future.set_exception(queued.error)
            else:
                queued.future.set_result(queued.result)
        if self._queued:
            self._commit_next(loop)
        else:
            self._committing = False

    def _commit(self, batch: list[_Write]) -> None:
        try:
            self._commit_together(batch)
        except _Failed:  # one unit failed and took the batch's transaction with it: again, each on its own
            self._commit_apart(batch)
        except Exception as exc:  # nothing of the batch is on disk
            for queued in batch:
                queued.error = exc

    def _commit_together(self, batch: list[_Write]) -> None:
        """The common case: every unit succeeds, in one transaction and no savepoints."""
        with self._writer.begin():
            for queued in batch:
                try:
                    queued.result = queued.run(self._writer)
                except Exception as exc:
                    if len(batch) == 1:
                        raise
                    raise _Failed from exc

    def _commit_apart(self, batch: list[_Write]) -> None:
        """Each unit in a savepoint, so one that fails is undone alone."""
        try:
            with self._writer.begin():
                for queued in batch:
                    _run_in_savepoint(self._writer, queued)
        except Exception as exc:
            for queued in batch:
                queued.error = queued.error or exc

    async def close(self) -> None:
        self._thread.shutdown(wait=True)
        if self._queued:  # writes nobody has started: commit them, though no caller may be left to hear
            self._commit(self._queued)
        self._reader.close()
        self._writer.close()
        self._engine.dispose()


class _Failed(Exception):
    """A unit of a batch failed; its transaction is rolled back."""


def _run_in_savepoint(conn: Connection, queued: _Write) -> None:
    try:
        with conn.begin_nested():
            queued.result = queued.run(conn)
    except Exception as exc:
        queued.error = exc
