"""Server-sent events: an app's machine table redrawn on every change the control plane's feed reports, and a
machine's log lines as they are stored.

The change feed takes listeners for good, so one listener is subscribed once and fans out to the open streams,
which come and go. A stream is told "something changed" (an Event, not a queue): a burst of changes is one
redraw, and a slow browser never makes memory grow.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

from aerodrome.control import ControlPlane

HEARTBEAT_SECONDS = 15.0


def sse(event: str, data: str) -> bytes:
    """One event; every line of `data` becomes a `data:` line, which the browser joins back with newlines."""
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {event}\n{lines}\n".encode()


class AppChanges:
    """Which open streams watch which app; the feed's listener sets their events."""

    def __init__(self) -> None:
        self._watchers: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        self.closed = False  # the server is shutting down: every stream ends, so none holds its shutdown

    def close(self) -> None:
        self.closed = True
        for events in self._watchers.values():
            for event in events:
                event.set()

    def machine_changed(self, machine_id: str, app_name: str) -> None:
        for event in self._watchers.get(app_name, ()):
            event.set()

    @contextlib.contextmanager
    def watch(self, app_name: str) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._watchers[app_name].add(event)
        try:
            yield event
        finally:
            self._watchers[app_name].discard(event)
            if not self._watchers[app_name]:
                del self._watchers[app_name]


async def machine_table(changes: AppChanges, app_name: str, draw: Callable[[], Awaitable[str]]) -> AsyncIterator[bytes]:
    """The table's body, drawn now and after every change (at most one redraw per change burst)."""
    with changes.watch(app_name) as changed:
        while not changes.closed:
            changed.clear()
            yield sse("machines", await draw())
            while not changed.is_set():
                try:
                    await asyncio.wait_for(changed.wait(), HEARTBEAT_SECONDS)
                except TimeoutError:
                    yield b": heartbeat\n\n"


def admit_log_stream(plane: ControlPlane, org: str) -> None:
    """Log follows count against the logs API's bounds: a browser tab is one stream, as `?follow=true` is."""
    plane.logs.admit_stream(org)


async def log_lines(
    plane: ControlPlane,
    changes: AppChanges,
    org: str,
    app_name: str,
    machine_id: str,
    after: int | None,
    draw: Callable[[object], str],
) -> AsyncIterator[bytes]:
    """The machine's lines after `after`, as they are stored, until the server shuts down (`changes.closed`);
    admitted with `admit_log_stream` first."""
    logs = plane.logs
    try:
        silent = 0.0
        while not changes.closed:
            lines = await plane.store.read_logs(
                app_name, after=after, machine_id=machine_id, region=None, limit=logs.settings.page_size
            )
            if lines:
                after = lines[-1].id
                yield sse("lines", "".join(draw(line) for line in lines))
                silent = 0.0
                continue
            if after is None:
                after = await plane.store.last_log_id()
            if silent >= HEARTBEAT_SECONDS:
                yield b": heartbeat\n\n"
                silent = 0.0
            await logs.next_append(1.0)
            silent += 1.0
    finally:
        logs.release_stream(org)
