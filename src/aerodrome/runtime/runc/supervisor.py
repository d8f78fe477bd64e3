"""One watcher for the exits of every machine: a pidfd per container init, polled by the event loop.

The container's init is not the daemon's child (runc hands it to the host's reaper), and after a daemon
restart it never is; a pidfd turns readable when any process exits, child or not, so one mechanism covers
fresh starts and re-adopted machines alike, without a thread or process per machine.

The same watcher caps the machines' log files: containers append to them directly, so a periodic sweep
moves the tail of an oversized log to `<log>.1` and truncates it (O_APPEND writers carry on at the new end).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path

LOG_CAP_BYTES = 4 * 1024 * 1024
LOG_SWEEP_SECONDS = 2.0


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot), which tells a reused pid from the original."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


class Supervisor:
    """Calls `on_exit(machine_id)` once when a watched init exits."""

    def __init__(self, on_exit: Callable[[str], None], *, log_cap: int = LOG_CAP_BYTES) -> None:
        self._on_exit = on_exit
        self._log_cap = log_cap
        self._fds: dict[str, int] = {}
        self._logs: dict[str, Path] = {}
        self._loop = asyncio.get_running_loop()
        self._sweeper = self._loop.create_task(self._sweep_logs())

    def watch(self, machine_id: str, pid: int, start_time: int | None, log: Path) -> None:
        """Watch `pid`; if it is already gone (or the pid now belongs to another process), report the exit now."""
        self.unwatch(machine_id)
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._loop.call_soon(self._on_exit, machine_id)
            return
        if start_time is not None and process_start_time(pid) != start_time:
            os.close(fd)
            self._loop.call_soon(self._on_exit, machine_id)
            return
        self._fds[machine_id] = fd
        self._logs[machine_id] = log
        self._loop.add_reader(fd, self._fired, machine_id)

    def unwatch(self, machine_id: str) -> None:
        fd = self._fds.pop(machine_id, None)
        self._logs.pop(machine_id, None)
        if fd is not None:
            self._loop.remove_reader(fd)
            os.close(fd)

    def watching(self, machine_id: str) -> bool:
        return machine_id in self._fds

    def _fired(self, machine_id: str) -> None:
        self.unwatch(machine_id)
        self._on_exit(machine_id)

    async def close(self) -> None:
        self._sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._sweeper
        for machine_id in list(self._fds):
            self.unwatch(machine_id)

    async def _sweep_logs(self) -> None:
        while True:
            await asyncio.sleep(LOG_SWEEP_SECONDS)
            for log in list(self._logs.values()):
                cap_log(log, self._log_cap)


def cap_log(log: Path, cap: int) -> None:
    """Keep at most about `cap` bytes in the log and as much in its one rotated predecessor."""
    try:
        if log.stat().st_size <= cap:
            return
        with open(log, "rb+") as f:
            f.seek(-cap // 2, os.SEEK_END)
            tail = f.read()
            f.truncate(0)
        log.with_name(log.name + ".1").write_bytes(tail)
    except OSError:
        pass
