"""What a running machine uses, read when `/metrics` is scraped: cgroup v1 counters and its veth's statistics.

Every file read here is the kernel's (cgroupfs, sysfs) under host-owned paths built from the machine id: nothing
a machine can write or link is opened.
"""

from __future__ import annotations

from pathlib import Path

from aerodrome.core import MachineUsage
from aerodrome.runtime.runc.cgroups import CGROUP_ROOT, cgroups_path
from aerodrome.runtime.runc.network import host_iface_name

SYS_NET = Path("/sys/class/net")
_UNLIMITED = 1 << 62  # cgroup v1 reports "no limit" as a page-rounded LONG_MAX


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _cpu_split(cpuacct: Path) -> tuple[float, float]:
    """User and system seconds from `cpuacct.stat`, which counts in USER_HZ ticks."""
    ticks = {"user": 0, "system": 0}
    try:
        for line in (cpuacct / "cpuacct.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key in ticks:
                ticks[key] = int(value)
    except (OSError, ValueError):
        pass
    return ticks["user"] / 100, ticks["system"] / 100


def machine_usage(machine_id: str, root: Path = CGROUP_ROOT, sys_net: Path = SYS_NET) -> MachineUsage | None:
    """The machine's usage, or None when it has no cgroup (not running)."""
    relative = cgroups_path(machine_id).lstrip("/")
    cpuacct, memory, blkio = root / "cpuacct" / relative, root / "memory" / relative, root / "blkio" / relative
    cpu_ns = _read_int(cpuacct / "cpuacct.usage")
    memory_bytes = _read_int(memory / "memory.usage_in_bytes")
    if cpu_ns is None or memory_bytes is None:
        return None
    limit = _read_int(memory / "memory.limit_in_bytes")
    user, system = _cpu_split(cpuacct)
    statistics = sys_net / host_iface_name(machine_id) / "statistics"
    return MachineUsage(
        cpu_seconds=cpu_ns / 1e9,
        cpu_user_seconds=user,
        cpu_system_seconds=system,
        memory_bytes=memory_bytes,
        memory_limit_bytes=limit if limit is not None and limit < _UNLIMITED else None,
        net_received_bytes=_read_int(statistics / "tx_bytes") or 0,
        net_sent_bytes=_read_int(statistics / "rx_bytes") or 0,
        io_bytes=_io_total(blkio),
    )


def _io_total(blkio: Path) -> int:
    """The `Total` line of `blkio.throttle.io_service_bytes` (every device, reads and writes)."""
    try:
        for line in (blkio / "blkio.throttle.io_service_bytes").read_text().splitlines():
            if line.startswith("Total "):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0
