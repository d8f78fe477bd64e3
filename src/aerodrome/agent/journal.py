"""The host agent's own durable record, one SQLite file: the event log read with a cursor, the results of
recent idempotency keys, and which volumes each machine has attached on this host.

Every write is committed before the call that made it returns (an exit is in the log before the runtime marks
it reported), so what the agent acknowledged survives a crash of its process. Calls run in a worker thread,
one at a time, so that the fsyncs stay off the event loop.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from aerodrome.core import ExitInfo, HostEvent, HostEventKind, HostState

T = TypeVar("T")
KEYS_KEPT = 4096  # recent idempotency keys whose results are kept; older ones are forgotten

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    cursor INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL, machine_id TEXT NOT NULL, version TEXT NOT NULL, state TEXT NOT NULL,
    exit TEXT, at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS keys (
    key TEXT PRIMARY KEY, operation TEXT NOT NULL, result TEXT NOT NULL, at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS keys_at ON keys (at);
CREATE TABLE IF NOT EXISTS attachments (
    machine_id TEXT NOT NULL, volume_id TEXT NOT NULL, PRIMARY KEY (machine_id, volume_id)
);
"""


class Journal:
    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._lock = asyncio.Lock()

    @classmethod
    def open(cls, path: Path) -> Journal:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cls(path)

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        async with self._lock:
            return await asyncio.to_thread(self._transaction, work)

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._db:  # commits, or rolls back on an exception
            self._db.execute("BEGIN IMMEDIATE")
            return work(self._db)

    def close(self) -> None:
        self._db.close()

    # events

    async def append(
        self, kind: HostEventKind, machine_id: str, version: str, state: HostState, exit: ExitInfo | None, at: str
    ) -> int:
        exit_json = None if exit is None else json.dumps(_exit_to_json(exit))

        def insert(db: sqlite3.Connection) -> int:
            row = db.execute(
                "INSERT INTO events (kind, machine_id, version, state, exit, at) VALUES (?, ?, ?, ?, ?, ?)",
                (kind.value, machine_id, version, state.value, exit_json, at),
            )
            return int(row.lastrowid or 0)

        return await self._run(insert)

    async def events(self, after: int, limit: int) -> list[HostEvent]:
        def select(db: sqlite3.Connection) -> list[HostEvent]:
            rows = db.execute(
                "SELECT cursor, kind, machine_id, version, state, exit, at FROM events WHERE cursor > ? "
                "ORDER BY cursor LIMIT ?",
                (after, limit),
            ).fetchall()
            return [_event(row) for row in rows]

        return await self._run(select)

    async def acknowledge(self, cursor: int) -> None:
        await self._run(lambda db: db.execute("DELETE FROM events WHERE cursor <= ?", (cursor,)))

    # idempotency keys

    async def recorded(self, key: str, operation: str) -> tuple[bool, Any]:
        """(True, result) when `key` was used before by `operation`; (False, None) when it is new."""

        def select(db: sqlite3.Connection) -> tuple[bool, Any]:
            row = db.execute("SELECT operation, result FROM keys WHERE key = ?", (key,)).fetchone()
            if row is None or row[0] != operation:
                return False, None
            return True, json.loads(row[1])

        return await self._run(select)

    async def record(self, key: str, operation: str, result: Any) -> None:
        def insert(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT OR REPLACE INTO keys (key, operation, result, at) VALUES (?, ?, ?, ?)",
                (key, operation, json.dumps(result), time.time()),
            )
            db.execute(
                "DELETE FROM keys WHERE key IN (SELECT key FROM keys ORDER BY at DESC LIMIT -1 OFFSET ?)",
                (KEYS_KEPT,),
            )

        await self._run(insert)

    # volumes attached to machines

    async def attach(self, machine_id: str, volume_ids: list[str]) -> None:
        def replace(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM attachments WHERE machine_id = ?", (machine_id,))
            db.executemany(
                "INSERT INTO attachments (machine_id, volume_id) VALUES (?, ?)", [(machine_id, v) for v in volume_ids]
            )

        await self._run(replace)

    async def attached(self, machine_id: str | None = None) -> dict[str, list[str]]:
        """Volume ids by machine (every machine's, or one's)."""

        def select(db: sqlite3.Connection) -> dict[str, list[str]]:
            query, args = "SELECT machine_id, volume_id FROM attachments ORDER BY machine_id, volume_id", ()
            if machine_id is not None:
                query = "SELECT machine_id, volume_id FROM attachments WHERE machine_id = ? ORDER BY volume_id"
                args = (machine_id,)  # type: ignore[assignment]
            found: dict[str, list[str]] = {}
            for machine, volume in db.execute(query, args):
                found.setdefault(machine, []).append(volume)
            return found

        return await self._run(select)

    async def detach(self, machine_id: str, volume_id: str) -> None:
        await self._run(
            lambda db: db.execute(
                "DELETE FROM attachments WHERE machine_id = ? AND volume_id = ?", (machine_id, volume_id)
            )
        )


def _exit_to_json(exit: ExitInfo) -> dict[str, Any]:
    return {
        "exit_code": exit.exit_code,
        "signal": exit.signal,
        "oom_killed": exit.oom_killed,
        "requested_stop": exit.requested_stop,
        "exited_at": exit.exited_at,
    }


def exit_from_json(data: dict[str, Any]) -> ExitInfo:
    return ExitInfo(
        exit_code=int(data["exit_code"]),
        signal=int(data["signal"]),
        oom_killed=bool(data["oom_killed"]),
        requested_stop=bool(data["requested_stop"]),
        exited_at=str(data["exited_at"]),
    )


def exit_to_json(exit: ExitInfo | None) -> dict[str, Any] | None:
    return None if exit is None else _exit_to_json(exit)


def _event(row: tuple[Any, ...]) -> HostEvent:
    cursor, kind, machine_id, version, state, exit, at = row
    return HostEvent(
        cursor=int(cursor),
        kind=HostEventKind(kind),
        machine_id=machine_id,
        version=version,
        state=HostState(state),
        exit=None if exit is None else exit_from_json(json.loads(exit)),
        at=at,
    )
