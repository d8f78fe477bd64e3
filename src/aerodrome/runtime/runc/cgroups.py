"""The cgroup v1 side of a machine: its path, the freezer, the OOM counter, its processes.

runc creates and removes the cgroups (`linux.cgroupsPath` is always set, else runc nests them under the
caller's); aerodrome reads them, and writes the freezer directly: it takes effect in well under a
millisecond, where `runc pause` costs a process start.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from aerodrome.core import RuntimeFailureError

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT = "aerodrome"
FREEZE_TIMEOUT = 5.0
RECLAIM_FLOOR = 4 * 1024 * 1024  # never squeeze a machine below this while reclaiming


def cgroups_path(machine_id: str) -> str:
    """The `linux.cgroupsPath` of a machine: the same relative path in every hierarchy."""
    return f"/{PARENT}/{machine_id}"


class MachineCgroup:
    """One machine's cgroups, read and written through cgroupfs."""

    def __init__(self, machine_id: str, root: Path = CGROUP_ROOT) -> None:
        self.machine_id = machine_id
        self.root = root
        self.relative = cgroups_path(machine_id).lstrip("/")

    def path(self, controller: str) -> Path:
        return self.root / controller / self.relative

    def exists(self) -> bool:
        return self.path("pids").is_dir()

    def pids(self) -> list[int]:
        """Every process of the machine, in cgroup order (its init first)."""
        try:
            text = (self.path("pids") / "cgroup.procs").read_text()
        except FileNotFoundError:
            return []
        return [int(line) for line in text.split()]

    def memory_usage(self) -> int:
        """Bytes of memory the machine uses now (page cache included, as the kernel charges it)."""
        try:
            return int((self.path("memory") / "memory.usage_in_bytes").read_text())
        except FileNotFoundError:
            return 0

    def set_memory_limit(self, limit: int) -> None:
        """Change the memory limit of a running machine; memory+swap moves with it (no swap on top of RAM).

        The kernel refuses a memory limit above memory+swap, so the order depends on the direction.
        """
        memory = self.path("memory")
        files = ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
        current = int((memory / files[0]).read_text())
        for name in files if limit < current else reversed(files):
            with contextlib.suppress(FileNotFoundError):  # memsw is absent without swap accounting
                (memory / name).write_text(str(limit))

    def reclaim(self, amount: int) -> int:
        """Ask the kernel to give back up to `amount` bytes of the machine's memory; return what it freed.

        The limit is lowered for a moment, which makes the kernel reclaim page cache (and swap nothing: there is
        no swap); when it cannot go that low it says EBUSY, and no process is killed. The limit is then put back.
        """
        memory = self.path("memory")
        limit_file = memory / "memory.limit_in_bytes"
        before, limit = self.memory_usage(), int(limit_file.read_text())
        target = max(before - amount, RECLAIM_FLOOR)
        if target < before:
            try:
                limit_file.write_text(str(target))
            except OSError:
                pass  # EBUSY: it freed what it could
            finally:
                limit_file.write_text(str(limit))
        return max(0, before - self.memory_usage())

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer took in this memory cgroup."""
        try:
            text = (self.path("memory") / "memory.oom_control").read_text()
        except FileNotFoundError:
            return 0
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def freezer_state(self) -> str:
        try:
            return (self.path("freezer") / "freezer.state").read_text().strip()
        except FileNotFoundError:
            return "THAWED"

    async def freeze(self) -> None:
        await self._set_freezer("FROZEN")

    async def thaw(self) -> None:
        await self._set_freezer("THAWED")

    async def _set_freezer(self, wanted: str) -> None:
        state_file = self.path("freezer") / "freezer.state"
        deadline = time.monotonic() + FREEZE_TIMEOUT
        attempt = 0
        while True:
            attempt += 1
            if wanted == "FROZEN" and attempt % 50 == 0:
                # A task caught mid-execve can hold the cgroup in FREEZING for good: thawing and freezing
                # again gets past it (runc's own freezer does the same).
                state_file.write_text("THAWED")
                await asyncio.sleep(0.01)
            # FREEZING is transient: tasks are frozen one by one; write again until the kernel reports the goal.
            state_file.write_text(wanted)
            if state_file.read_text().strip() == wanted:
                return
            if time.monotonic() > deadline:
                if wanted == "FROZEN":
                    state_file.write_text("THAWED")  # never leave a machine half-frozen
                raise RuntimeFailureError(f"machine {self.machine_id}: freezer did not reach {wanted}")
            await asyncio.sleep(0.001)

    def cpu_quota(self) -> tuple[int, int]:
        """(cfs_quota_us, cfs_period_us) of the machine."""
        cpu = self.path("cpu")
        return int((cpu / "cpu.cfs_quota_us").read_text()), int((cpu / "cpu.cfs_period_us").read_text())

    def remove_leftovers(self) -> None:
        """Remove empty cgroup directories runc left behind (after a crash between exit and delete)."""
        for hierarchy in self.root.iterdir():
            directory = hierarchy / self.relative
            if directory.is_dir():
                with contextlib.suppress(OSError):
                    directory.rmdir()

    def leftovers(self) -> list[Path]:
        """The machine's cgroup directories that still exist, in any hierarchy."""
        return [h / self.relative for h in self.root.iterdir() if (h / self.relative).is_dir()]
