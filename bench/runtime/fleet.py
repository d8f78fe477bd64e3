"""Many machines at once: start N busybox httpd machines with one RuncRuntime and report the runtime's own memory.

    sudo .venv/bin/python bench/runtime/fleet.py [--machines 200] [--created 1000]

With --created, it first creates that many machines without starting them (Fly's `skip_launch`) and reports
what they cost: time per create, and the network namespaces and veths on the host (target: none).

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

from aerodrome.core import ImageInfo, SandboxSpec, machine_id
from aerodrome.runtime.images import ImageStore
from aerodrome.runtime.process import run
from aerodrome.runtime.runc import RuncRuntime
from aerodrome.runtime.runc.firewall import forget_orgs, uninstall
from aerodrome.runtime.runc.network import host_iface_name, netns_name

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


async def network_of(ids: list[str]) -> tuple[int, int]:
    """How many netns and veths of these machines are on the host."""
    netns = set((await run(["ip", "netns", "list"])).text.split())
    links = {line.split()[1].split("@")[0] for line in (await run(["ip", "-o", "link", "show"])).text.splitlines()}
    return sum(netns_name(m) in netns for m in ids), sum(host_iface_name(m) in links for m in ids)


async def measure_idle(runtime: RuncRuntime, image: ImageInfo, count: int, ids: list[str]) -> None:
    began = time.perf_counter()
    for _ in range(count):
        spec = SandboxSpec(machine_id(), "fleet", "fleet", ORG, image.digest, HTTPD, memory_mb=256)
        await runtime.create(spec)
        ids.append(spec.machine_id)
    took = time.perf_counter() - began
    netns, veths = await network_of(ids)
    print(f"created, not started:       {count:8d}     ({took / count * 1000:.2f} ms each)")
    print(f"their netns / veths:        {netns:8d} / {veths}   (target: 0 / 0)")


async def measure(count: int, idle: int, workdir: Path) -> None:
    store = ImageStore(workdir / "images")
    image = await store.import_archive(await build_busybox_archive(workdir / "busybox.tar"), "bench/busybox:latest")
    runtime = RuncRuntime(workdir / "runtime", store, ipv4_pool=POOL, egress=False)
    ids: list[str] = []
    waiting: list[str] = []
    floor, available = rss_mb(), host_available_mb()
    try:
        if idle:
            await measure_idle(runtime, image, idle, waiting)
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
        for mid in waiting + ids:
            await runtime.destroy(mid)
        await runtime.close()
        await forget_orgs([runtime.pool.subnet_of(s) for s in runtime.pool.slots.values()], [])
        await uninstall(POOL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--machines", type=int, default=200)
    parser.add_argument("--created", type=int, default=0, help="machines to create and leave unstarted first")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="aerodrome-fleet-"))
    try:
        asyncio.run(measure(args.machines, args.created, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
