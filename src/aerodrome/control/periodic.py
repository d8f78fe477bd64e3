"""A pass of work repeated every `interval` seconds on one asyncio task, which one failed pass does not end."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aerodrome.core import is_out_of_space


class Periodic:
    """Runs `work` every `interval` seconds between `start()` and `close()`; an interval of 0 runs nothing.

    `passes` counts the passes finished (failed ones too), so that a watcher can tell "nothing happened in two
    passes" from "no pass ran yet" (`/metrics` shows it as `aerodrome_background_passes_total`)."""

    def __init__(self, name: str, interval: float, work: Callable[[], Awaitable[object]], log: logging.Logger) -> None:
        self.name = name
        self.interval = interval
        self._work = work
        self._log = log
        self._task: asyncio.Task[None] | None = None
        self.passes = 0
        self.failures = 0

    def start(self) -> None:
        if self._task is None and self.interval > 0:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self._work()
            except Exception as exc:  # one bad pass must not end the ones after it
                self.failures += 1
                if is_out_of_space(exc):  # an expected condition, reported by the API and doctor: no traceback
                    self._log.warning("%s pass skipped: the data filesystem is full", self.name)
                else:
                    self._log.exception("%s pass failed", self.name)
            self.passes += 1
