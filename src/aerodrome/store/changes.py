"""The change feed between replicas on PostgreSQL: `NOTIFY` after each change, `LISTEN` on a connection of its own.

Each replica holds one asyncpg connection outside the pool (a pooled one would lose its LISTEN when handed
back) and sends its changes on it too, one `pg_notify` per batch of what accumulated meanwhile. A payload names
the replica that sent it, so a replica ignores its own. PostgreSQL delivers a notification only to connections
listening at its commit, so when the connection is lost (PostgreSQL restarted, a network cut) the changes made
meanwhile are unknown: once connected again the relay says so (`deliver(None)`), and every consumer reads all
again. A ping every few seconds finds a connection that died silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson
from sqlalchemy.engine import make_url

from aerodrome.core import Change, ChangeSink

log = logging.getLogger("aerodrome.store")
CHANNEL = "aerodrome_changes"
PING_INTERVAL = 5.0
RECONNECT_PAUSE = (0.1, 2.0)  # the first pause after a lost connection, and the longest
_BATCH = 200  # changes per pg_notify (a payload stays well under PostgreSQL's 8000 bytes)


def asyncpg_dsn(url: str) -> str:
    """The SQLAlchemy URL of the store as a DSN asyncpg's own `connect` takes."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class PgChangeRelay:
    def __init__(self, url: str, *, connect_timeout: float = 5.0) -> None:
        self._dsn = asyncpg_dsn(url)
        self._connect_timeout = connect_timeout
        self.replica = uuid.uuid4().hex[:12]
        self._deliver: ChangeSink | None = None
        self._outbox: asyncio.Queue[Change] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def start(self, deliver: ChangeSink) -> None:
        """Listen from now on; returns once listening (or once the first attempt failed: it keeps trying)."""
        self._deliver = deliver
        self._task = asyncio.create_task(self._run(), name="change relay")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), self._connect_timeout + 1)

    def send(self, change: Change) -> None:
        self._outbox.put_nowait(change)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        pause, first = RECONNECT_PAUSE[0], True
        while True:
            try:
                conn = await asyncpg.connect(self._dsn, timeout=self._connect_timeout)
            except (OSError, TimeoutError, asyncpg.PostgresError) as error:
                log.debug("change feed: cannot connect (%s); retrying", error)
                await asyncio.sleep(pause)
                pause = min(pause * 2, RECONNECT_PAUSE[1])
                continue
            try:
                await conn.add_listener(CHANNEL, self._heard)
                self.connected.set()
                if not first:
                    log.info("change feed: connected again; reading everything again")
                    self._arrived(None)
                first, pause = False, RECONNECT_PAUSE[0]
                await self._serve(conn)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("change feed: connection lost (%s); reconnecting", error)
            finally:
                self.connected.clear()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 1)
                if not conn.is_closed():
                    conn.terminate()

    async def _serve(self, conn: Any) -> None:
        """Send what this replica changed; ping when there is nothing to send. Raises when the connection breaks."""
        while True:
            try:
                first = await asyncio.wait_for(self._outbox.get(), PING_INTERVAL)
            except TimeoutError:
                await conn.execute("SELECT 1", timeout=self._connect_timeout)
                continue
            batch = [first]
            while len(batch) < _BATCH and not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            payload = orjson.dumps({"r": self.replica, "c": [[c.kind, c.key, c.app] for c in batch]}).decode()
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload, timeout=self._connect_timeout)

    def _heard(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            message = orjson.loads(payload)
            if message.get("r") == self.replica:
                return
            changes = [Change(str(kind), str(key), str(app)) for kind, key, app in message["c"]]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            log.warning("change feed: a notification that does not read: %.200s", payload)
            return
        for change in changes:
            self._arrived(change)

    def _arrived(self, change: Change | None) -> None:
        assert self._deliver is not None
        try:
            self._deliver(change)
        except Exception:  # one consumer's failure must not end the feed
            log.exception("change feed: a consumer failed on %s", change)
