"""What this replica's edge serves, kept up with the changes other replicas make to apps' hostnames and addresses.

The change feed names the app and what changed; a handler per kind reads the store again for that app (None:
for every app, after the feed lost its connection). The work runs one at a time on a task of its own, in the
order the changes came, so a change is never applied over a newer one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aerodrome.control.events import ChangeFeed
from aerodrome.core import Change

log = logging.getLogger(__name__)
Handler = Callable[[str | None], Awaitable[None]]  # the app whose set changed; None: every app


class AppFollower:
    def __init__(self, feed: ChangeFeed) -> None:
        self._handlers: dict[str, Handler] = {}
        self._pending: asyncio.Queue[tuple[str, str | None]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        feed.subscribe_apps(self._changed, reset=self._reset)

    def follow(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="app follower")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _changed(self, change: Change) -> None:
        if change.kind in self._handlers:
            self._pending.put_nowait((change.kind, change.app))

    def _reset(self) -> None:
        for kind in self._handlers:
            self._pending.put_nowait((kind, None))

    async def _run(self) -> None:
        while True:
            kind, app = await self._pending.get()
            try:
                await self._handlers[kind](app)
            except Exception:  # the next change (or the next reset) reads the store again
                log.exception("could not follow a change of %s for app %s", kind, app or "(every app)")
