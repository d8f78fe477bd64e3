"""What volume tests check on the host: capabilities, and mounts or loop devices left behind."""

from __future__ import annotations

from pathlib import Path

CAP_SYS_RESOURCE = 24


def online_resize_allowed() -> bool:
    """True when this process (and so the server it starts) may grow a mounted ext4 filesystem."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> CAP_SYS_RESOURCE & 1)
    return False


def host_leftovers(data_dir: Path) -> list[str]:
    """Mounts and loop devices that still refer to anything under `data_dir`; empty once all is cleaned up."""
    root = str(data_dir.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split()[4]
        if mount_point.startswith(root):
            found.append(f"mount {mount_point}")
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        name = backing.read_text().strip()
        if name.startswith(root):
            found.append(f"{backing.parent.parent.name} on {name}")
    return found
