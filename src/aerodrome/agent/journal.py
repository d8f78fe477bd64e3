"""The host agent's own durable record, one SQLite file: the event log read with a cursor, the results of
recent idempotency keys, which volumes each machine has attached on this host, and the step runner's
operations with a START and a COMPLETE row per step (`aerodrome.agent.steps`).

Every write is committed before the call that made it returns (an exit is in the log before the runtime marks
it reported), so what the agent acknowledged survives a crash of its process. Calls run in a worker thread,
one at a time, so that the fsyncs stay off the event loop. An operation's arguments and state (a version's env
holds the app's secrets) are sealed with the key in `<journal>.key` (0600), never written in plaintext.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from cryptography.fernet import Fernet, InvalidToken

from aerodrome.agent.steps import JSON, State, Unfinished
from aerodrome.core import ExitInfo, HostEvent, HostEventKind, HostState, InsufficientStorageError, is_out_of_space

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
CREATE TABLE IF NOT EXISTS operations (
    key TEXT PRIMARY KEY, kind TEXT NOT NULL, args BLOB NOT NULL, state BLOB NOT NULL,
    step TEXT NOT NULL, status TEXT NOT NULL, error TEXT, at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS operations_status ON operations (status, at);
CREATE TABLE IF NOT EXISTS steps (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, step TEXT NOT NULL, phase TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS steps_key ON steps (key, seq);
"""
RUNNING, DONE, FAILED = "running", "done", "failed"
START, COMPLETE = "START", "COMPLETE"


class Journal:
    def __init__(self, path: Path) -> None:
        self._seal = Fernet(_key(path.with_name(path.name + ".key")))
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
            try:
                return await asyncio.to_thread(self._transaction, work)
            except Exception as exc:
                if is_out_of_space(exc):  # rolled back: nothing of it is on disk, nor done on the host
                    raise InsufficientStorageError("writing to the host agent's journal") from exc
                raise

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
            return True, self._result(row[1])

        return await self._run(select)

    async def record(self, key: str, operation: str, result: Any) -> None:
        sealed = self._seal.encrypt(json.dumps(result).encode()).decode()
        await self._run(lambda db: _record_key(db, key, operation, sealed))

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

    # the step runner's operations (aerodrome.agent.steps.RunLog)

    async def begin(self, key: str, kind: str, args: JSON, step: str) -> None:
        sealed_args, sealed_state = self._sealed(args), self._sealed({})

        def insert(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT OR REPLACE INTO operations (key, kind, args, state, step, status, at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, kind, sealed_args, sealed_state, step, RUNNING, time.time()),
            )
            db.execute("DELETE FROM steps WHERE key = ?", (key,))  # a key that failed before starts afresh
            _step_row(db, key, step, START)

        await self._run(insert)

    async def advance(self, key: str, done: str, state: State, step: str) -> None:
        sealed = self._sealed(state)

        def update(db: sqlite3.Connection) -> None:
            _step_row(db, key, done, COMPLETE)
            db.execute("UPDATE operations SET state = ?, step = ? WHERE key = ?", (sealed, step, key))
            _step_row(db, key, step, START)

        await self._run(update)

    async def finish(self, key: str, kind: str, done: str, state: State, result: Any) -> None:
        sealed, sealed_result = self._sealed(state), self._seal.encrypt(json.dumps(result).encode()).decode()

        def update(db: sqlite3.Connection) -> None:
            _step_row(db, key, done, COMPLETE)
            db.execute("UPDATE operations SET state = ?, status = ? WHERE key = ?", (sealed, DONE, key))
            _record_key(db, key, kind, sealed_result)

        await self._run(update)

    async def fail(self, key: str, step: str, error: str) -> None:
        await self._run(
            lambda db: db.execute(
                "UPDATE operations SET status = ?, step = ?, error = ? WHERE key = ?", (FAILED, step, error[:2000], key)
            )
        )

    async def unfinished(self) -> list[Unfinished]:
        def select(db: sqlite3.Connection) -> list[tuple[Any, ...]]:
            query = "SELECT key, kind, args, state, step FROM operations WHERE status = ? ORDER BY at, key"
            return db.execute(query, (RUNNING,)).fetchall()

        rows = await self._run(select)
        return [
            Unfinished(key, kind, self._opened(args), self._opened(state), step)
            for key, kind, args, state, step in rows
        ]

    async def operation(self, key: str) -> tuple[str, str, list[tuple[str, str]]] | None:
        """(status, step, [(step, phase)…] in the order written) of the operation under `key`; None if unknown."""

        def select(db: sqlite3.Connection) -> tuple[str, str, list[tuple[str, str]]] | None:
            row = db.execute("SELECT status, step FROM operations WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            steps = db.execute("SELECT step, phase FROM steps WHERE key = ? ORDER BY seq", (key,)).fetchall()
            return row[0], row[1], [(name, phase) for name, phase in steps]

        return await self._run(select)

    def _sealed(self, value: JSON) -> bytes:
        return self._seal.encrypt(json.dumps(value).encode())

    def _result(self, stored: str) -> Any:
        try:
            return json.loads(self._seal.decrypt(stored.encode()))
        except InvalidToken:  # written in plaintext by an earlier version of the agent
            return json.loads(stored)

    def _opened(self, sealed: bytes) -> JSON:
        value = json.loads(self._seal.decrypt(sealed))
        assert isinstance(value, dict)
        return value


def _step_row(db: sqlite3.Connection, key: str, step: str, phase: str) -> None:
    db.execute("INSERT INTO steps (key, step, phase, at) VALUES (?, ?, ?, ?)", (key, step, phase, time.time()))


def _record_key(db: sqlite3.Connection, key: str, operation: str, sealed: str) -> None:
    db.execute(
        "INSERT OR REPLACE INTO keys (key, operation, result, at) VALUES (?, ?, ?, ?)",
        (key, operation, sealed, time.time()),
    )
    # the oldest keys, and the finished operations beyond as many, are forgotten
    db.execute("DELETE FROM keys WHERE key IN (SELECT key FROM keys ORDER BY at DESC LIMIT -1 OFFSET ?)", (KEYS_KEPT,))
    forgotten = "SELECT key FROM operations WHERE status != ? ORDER BY at DESC LIMIT -1 OFFSET ?"
    db.execute(f"DELETE FROM steps WHERE key IN ({forgotten})", (RUNNING, KEYS_KEPT))
    db.execute(f"DELETE FROM operations WHERE key IN ({forgotten})", (RUNNING, KEYS_KEPT))


def _key(path: Path) -> bytes:
    """The journal's sealing key, made on first use, readable by its owner only."""
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    key = Fernet.generate_key()
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key)
        out.flush()
        os.fsync(out.fileno())
    try:
        os.link(tmp, path)  # whole or absent: a crash never leaves an empty key
    except FileExistsError:  # made meanwhile by another opener
        return path.read_bytes().strip()
    finally:
        tmp.unlink()
    return key


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
