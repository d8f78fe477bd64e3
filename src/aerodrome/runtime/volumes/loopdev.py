"""Loop devices, mounts and freezes, through losetup, mount and fsfreeze.

Loop devices and mounts belong to the kernel, not to the daemon: they outlive a crash of the daemon, so every
query here asks the kernel (losetup, /proc/self/mountinfo) rather than remembering anything in memory.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from aerodrome.runtime.process import ToolError, run

# Generous: these tools answer in milliseconds, but a loaded host can stall device setup.
_TOOL_TIMEOUT = 30.0
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True, slots=True)
class MountEntry:
    """One line of /proc/self/mountinfo: what is mounted where."""

    mount_point: str
    source: str
    fstype: str


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def mount_table() -> list[MountEntry]:
    """The mounts of this process's mount namespace, in mount order."""
    entries = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) >= 5 and len(tail) >= 2:
            entries.append(MountEntry(_unescape(fields[4]), _unescape(tail[1]), tail[0]))
    return entries


def find_mount(mount_point: Path) -> MountEntry | None:
    """The topmost mount at `mount_point`, if any."""
    found = None
    for entry in mount_table():
        if entry.mount_point == str(mount_point):
            found = entry
    return found


async def loops_of(image: Path) -> list[str]:
    """Loop devices backed by `image` (matched by inode, so a renamed or re-linked path still matches)."""
    try:
        os.stat(image)
    except FileNotFoundError:
        return []  # losetup fails on a missing file; nothing can be backed by it under this name
    done = await run(["losetup", "--noheadings", "--output", "NAME", "--associated", str(image)], timeout=_TOOL_TIMEOUT)
    return [line.strip() for line in done.text.splitlines() if line.strip()]


async def loops_under(directory: Path) -> dict[str, Path]:
    """Every loop device whose backing file lies in `directory`, mapped to that file."""
    done = await run(["losetup", "--list", "--json", "--output", "NAME,BACK-FILE"], timeout=_TOOL_TIMEOUT)
    if not done.stdout.strip():
        return {}  # losetup prints nothing at all when no loop device is attached
    found = {}
    for device in json.loads(done.stdout).get("loopdevices", []):
        back_file = (device.get("back-file") or "").removesuffix(" (deleted)")
        if back_file and Path(back_file).parent == directory:
            found[device["name"]] = Path(back_file)
    return found


async def attach(image: Path, *, direct_io: bool) -> str:
    """Attach `image` to a free loop device and return the device path."""
    argv = ["losetup", "--find", "--show", f"--direct-io={'on' if direct_io else 'off'}", str(image)]
    done = await run(argv, timeout=_TOOL_TIMEOUT)
    return done.text.strip()


async def refresh_capacity(device: str) -> None:
    """Make the loop device see the current size of its backing file."""
    await run(["losetup", "--set-capacity", device], timeout=_TOOL_TIMEOUT)


async def detach(device: str) -> None:
    """Detach a loop device; a device already gone counts as detached."""
    try:
        await run(["losetup", "--detach", device], timeout=_TOOL_TIMEOUT)
    except ToolError as exc:
        if "No such device" not in exc.stderr and "No such device or address" not in exc.stderr:
            raise


async def mount(device: str, mount_point: Path, fstype: str) -> None:
    """Mount a device; nodev and nosuid because the volume's content is the machine's, not the host's."""
    os.makedirs(mount_point, exist_ok=True)
    await run(["mount", "-t", fstype, "-o", "nodev,nosuid", device, str(mount_point)], timeout=_TOOL_TIMEOUT)


async def unmount(mount_point: Path) -> None:
    """Unmount every layer stacked at `mount_point` (a crash can leave a volume mounted twice)."""
    while find_mount(mount_point) is not None:
        await run(["umount", str(mount_point)], timeout=_TOOL_TIMEOUT)


async def freeze(mount_point: Path) -> None:
    """Suspend writes and flush the filesystem so that its backing file is consistent."""
    await run(["fsfreeze", "--freeze", str(mount_point)], timeout=_TOOL_TIMEOUT)


async def thaw(mount_point: Path) -> bool:
    """Resume writes; False when the filesystem was not frozen."""
    done = await run(["fsfreeze", "--unfreeze", str(mount_point)], timeout=_TOOL_TIMEOUT, check=False)
    return done.returncode == 0
