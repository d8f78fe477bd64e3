"""The machine a run measured: what `results.json` records so figures are never read apart from their hardware."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def host_info() -> dict[str, object]:
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count() or 0,
        "kernel": platform.release(),
        "memory_mib": _meminfo_kib("MemTotal") // 1024,
        "python": platform.python_version(),
    }


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _meminfo_kib(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return 0


def available_mib() -> float:
    return _meminfo_kib("MemAvailable") / 1024


def process_rss_mib(pid: int) -> float:
    """Resident memory of one process, from /proc (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_counts(pid: int) -> dict[str, int]:
    """A process's open file descriptors and threads: what grows in the daemon with its machines."""
    threads = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("Threads:"))
    return {"fds": len(os.listdir(f"/proc/{pid}/fd")), "threads": int(threads.split()[1])}


def host_counts() -> dict[str, int]:
    """Processes, network interfaces and namespaces, and mounts on the host: what each running machine adds."""
    netns = Path("/run/netns")
    with open("/proc/self/mountinfo") as table:
        mounts = sum(1 for _ in table)
    return {
        "processes": sum(1 for entry in Path("/proc").iterdir() if entry.name.isdigit()),
        "interfaces": len(os.listdir("/sys/class/net")),
        "netns": len(os.listdir(netns)) if netns.is_dir() else 0,
        "mounts": mounts,
    }
