"""What an agent reports of its host for placement: its CPUs, its memory and its data filesystem's size."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from aerodrome.agent.capacity import host_info


def mem_total_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no MemTotal in /proc/meminfo")


def test_the_host_reports_its_cpus_memory_and_the_data_filesystem(tmp_path: Path) -> None:
    info = host_info("host-a", "ams", tmp_path)
    assert (info.name, info.region) == ("host-a", "ams")
    assert info.cpus == os.cpu_count()
    assert info.memory_mb == mem_total_mb()
    assert info.disk_bytes == shutil.disk_usage(tmp_path).total


def test_a_directory_not_made_yet_is_measured_on_its_parent(tmp_path: Path) -> None:
    assert host_info("h", "iad", tmp_path / "runtime").disk_bytes == shutil.disk_usage(tmp_path).total
