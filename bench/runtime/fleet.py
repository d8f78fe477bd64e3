"""Many machines at once: start N busybox httpd machines with one RuncRuntime and report the runtime's own memory.

    sudo .venv/bin/python bench/runtime/fleet.py [--machines 200]

The runtime is the daemon's machine supervisor; its resident memory (this process's RSS, with the Python
interpreter and every module loaded) is what stays in the daemon per host. Target: 200 running machines with the
daemon's RSS at or under 200 MB. The floor is the same process's RSS before any machine exists.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.images import build_busybox_archive

from aerodrome.core import SandboxSpec, machine_id
from aerodrome.runtime.images import ImageStore
from aerodrome.runtime.runc import RuncRuntime
from aerodrome.runtime.runc.firewall import forget_orgs, uninstall

POOL = "172.26.0.0/16"
ORG = 11
HTTPD = ("httpd", "-f", "-p", "8080", "-h", "/www")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def host_available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def measure(count: int, workdir: Path) -> None:
    store = ImageStore(workdir / "images")
    image = await store.import_archive(await build_busybox_archive(workdir / "busybox.tar"), "bench/busybox:latest")
    runtime = RuncRuntime(workdir / "runtime", store, ipv4_pool=POOL, egress=False)
    ids: list[str] = []
    floor, available = rss_mb(), host_available_mb()
    try:
        began = time.perf_counter()
        for _ in range(count):
            spec = SandboxSpec(machine_id(), "fleet", "fleet", ORG, image.digest, HTTPD, memory_mb=256)
            await runtime.create(spec)
            ids.append(spec.machine_id)
        created = time.perf_counter()
        for mid in ids:
            await runtime.start(mid)
        started = time.perf_counter()
        running = sum([await runtime.status(mid) == "running" for mid in ids])
        rss = rss_mb()
        print(f"machines running:           {running}/{count}")
        print(
            f"create all:                 {created - began:8.2f} s   ({(created - began) / count * 1000:.1f} ms each)"
        )
        each = (started - created) / count * 1000
        print(f"start all:                  {started - created:8.2f} s   ({each:.1f} ms each)")
        print(f"runtime RSS before:         {floor:8.1f} MB   (floor)")
        print(f"runtime RSS with machines:  {rss:8.1f} MB   {rss / floor:.2f}x floor   (target <= 200 MB)")
        print(f"host memory per machine:    {(available - host_available_mb()) / count:8.2f} MB")
    finally:
        for mid in ids:
            await runtime.destroy(mid)
        await runtime.close()
        await forget_orgs([runtime.pool.subnet_of(s) for s in runtime.pool.slots.values()], [])
        await uninstall(POOL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--machines", type=int, default=200)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="aerodrome-fleet-"))
    try:
        asyncio.run(measure(args.machines, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
