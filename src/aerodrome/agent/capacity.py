"""What this host has for machines and volumes, as its agent reports it in `HostInfo` for placement."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from aerodrome.core import HostInfo


def host_info(name: str, region: str, volumes_dir: Path) -> HostInfo:
    """The host's CPUs, its memory, and the size of the filesystem its volumes are made on."""
    try:
        disk = shutil.disk_usage(volumes_dir if volumes_dir.exists() else volumes_dir.parent).total
    except OSError:
        disk = 0  # not known: placement bounds nothing by it
    return HostInfo(name=name, region=region, cpus=os.cpu_count() or 0, memory_mb=_memory_mb(), disk_bytes=disk)


def _memory_mb() -> int:
    """MemTotal of /proc/meminfo (0 when it does not read: not reported)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0
