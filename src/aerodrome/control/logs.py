"""Machine logs: each running machine's output moved from the host into the store, a pass every second.

A pass asks the host for what each machine printed after its cursor (a bounded read), cuts it into lines
and appends them with the new cursor in one transaction, so a restart of the daemon neither loses nor repeats
a line: the next run starts from the stored cursor, and the host lets go only of bytes before it. A machine
is read while it runs, once more after it stopped (its last lines, the unfinished one too), and every live
machine once at start (exits while no daemon ran). aerodrome's own lines come with the machine's events
(`core.event_log_line`). Followers of the logs API wait on `next_append` rather than poll the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from aerodrome.control.periodic import Periodic
from aerodrome.core import (
    RUNNER_PROVIDER,
    Clock,
    HostAgent,
    LogLine,
    Machine,
    MachineState,
    OutputChunk,
    OutputCursor,
    RateLimitedError,
    Store,
    split_output,
)

log = logging.getLogger("aerodrome.logs")

_ACTIVE = frozenset({MachineState.STARTED, MachineState.STARTING, MachineState.STOPPING, MachineState.SUSPENDING})


@dataclass(frozen=True, slots=True)
class LogSettings:
    max_bytes_per_machine: int = 1024 * 1024  # messages kept per machine, the newest
    max_age: float = 7 * 86_400.0  # seconds a line is kept (by the retention sweep)
    interval: float = 1.0  # seconds between passes over running machines; 0 turns collection off
    read_limit: int = 256 * 1024  # bytes read of one machine's output per pass
    page_size: int = 100  # lines per page of the logs API
    streams: int = 64  # follow streams open at once, all organisations together
    streams_per_org: int = 16


class MachineLogs:
    def __init__(self, store: Store, agent: HostAgent, clock: Clock, settings: LogSettings) -> None:
        self._store = store
        self._agent = agent
        self._clock = clock
        self.settings = settings
        self._cursors: dict[str, OutputCursor] = {}
        self._active: set[str] = set()
        self._changed: set[str] = set()  # machines whose state changed since the last pass
        self._first = True
        self._appended = asyncio.Event()
        self.periodic = Periodic("logs", settings.interval, self.collect, log)
        self.streams: dict[str, int] = {}  # open follow streams by organisation

    def admit_stream(self, org: str) -> None:
        """Count one more follow stream of `org`, or raise RateLimitedError past the bounds; `release_stream`
        ends it."""
        if sum(self.streams.values()) >= self.settings.streams:
            raise RateLimitedError(f"too many log streams (at most {self.settings.streams})", retry_after=5)
        if self.streams.get(org, 0) >= self.settings.streams_per_org:
            limit = self.settings.streams_per_org
            raise RateLimitedError(f"too many log streams for {org} (at most {limit})", retry_after=5)
        self.streams[org] = self.streams.get(org, 0) + 1

    def release_stream(self, org: str) -> None:
        left = self.streams.get(org, 0) - 1
        if left > 0:
            self.streams[org] = left
        else:
            self.streams.pop(org, None)

    def start(self) -> None:
        self.periodic.start()

    async def close(self) -> None:
        await self.periodic.close()

    async def next_append(self, timeout: float) -> None:
        """Return after the next pass that stored lines, or after `timeout` seconds."""
        event = self._appended
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    def machine_changed(self, machine_id: str, app_name: str) -> None:
        """A change feed listener: a machine that started and stopped between two passes is read all the same."""
        self._changed.add(machine_id)

    def wake_followers(self) -> None:
        self._appended.set()
        self._appended = asyncio.Event()

    async def collect(self) -> int:
        """One pass; returns how many lines were stored. The first pass reads every live machine; later ones
        only those running and those whose state changed since (the change feed says which), so a pass costs
        nothing for the host's stopped machines."""
        if self._first:
            machines = await self._store.live_machines()
            self._first = False
        else:
            due, self._changed = self._active | self._changed, set()
            found = [await self._store.get_machine(machine_id) for machine_id in sorted(due)]
            machines = [m for m in found if m is not None]
        self._active = {m.id for m in machines if m.state in _ACTIVE and not m.deleted}
        stored = 0
        for machine in machines:
            final = machine.id not in self._active
            stored += await self._collect_one(machine, final=final)
            if final:
                self._cursors.pop(machine.id, None)  # read from the store again if it starts again
        if stored:
            self.wake_followers()
        return stored

    async def _collect_one(self, machine: Machine, *, final: bool) -> int:
        cursor = self._cursors.get(machine.id)
        if cursor is None:
            cursor = await self._store.output_cursor(machine.id)
        chunk = await self._agent.read_output(machine.id, cursor, self.settings.read_limit)
        lines, used = split_output(chunk.data, final=final)
        new_cursor = OutputCursor(chunk.cursor.file, chunk.cursor.offset - (len(chunk.data) - used))
        if new_cursor == cursor:
            self._cursors[machine.id] = cursor
            return 0
        records = self._lines(machine, chunk, lines)
        await self._store.append_output(machine.id, records, new_cursor, max_bytes=self.settings.max_bytes_per_machine)
        self._cursors[machine.id] = new_cursor
        return len(records)

    def _lines(self, machine: Machine, chunk: OutputChunk, lines: list[str]) -> list[LogLine]:
        now = int(self._clock.now() * 1_000_000)
        records = [
            LogLine(machine.id, machine.app_name, machine.region, now, message, level="info") for message in lines
        ]
        if chunk.skipped:
            dropped = f"{chunk.skipped} bytes of output were not kept (printed faster than they were read)"
            records.insert(
                0, LogLine(machine.id, machine.app_name, machine.region, now, dropped, "warn", RUNNER_PROVIDER)
            )
        return records
