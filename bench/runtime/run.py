"""Machine lifecycle timings of RuncRuntime beside a bare `runc run -d`, measured in the same run.

    sudo .venv/bin/python bench/runtime/run.py [--runs 20]

Every operation runs on a busybox httpd machine; "start" counts from `start()` until HTTP answers on the
private IPv4. The floor is a bare runc container of the same rootfs and program (no overlay, no wrapper,
no limits) in a netns prepared beforehand, timed from `runc run -d` until HTTP answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.images import build_busybox_archive

from aerodrome.core import ImageInfo, SandboxSpec, machine_id
from aerodrome.runtime.images import ImageStore
from aerodrome.runtime.process import run
from aerodrome.runtime.runc import RuncRuntime
from aerodrome.runtime.runc.firewall import forget_orgs, uninstall
from aerodrome.runtime.runc.network import AddressPool, create_network, delete_network
from aerodrome.runtime.runc.userns import RANGE_START, IdRange, new_namespaces

POOL = "172.28.0.0/16"
ORG = 9
HTTPD = ("httpd", "-f", "-p", "8080", "-h", "/www")


async def answers(host: str) -> None:
    """Wait until an HTTP request to host:8080 gets a reply."""
    while True:
        try:
            reader, writer = await asyncio.open_connection(host, 8080)
            writer.write(b"GET / HTTP/1.0\r\n\r\n")
            reply = await reader.read()
            writer.close()
            if reply.startswith(b"HTTP/1."):
                return
        except OSError:
            pass
        await asyncio.sleep(0.0005)


async def timed(action: Callable[[], Awaitable[object]]) -> float:
    began = time.perf_counter()
    await action()
    return (time.perf_counter() - began) * 1000


class Bare:
    """A minimal runc container of the same image and program, in a netns made once."""

    def __init__(self, workdir: Path, image: ImageInfo) -> None:
        self.root, self.bundle = workdir / "bare-runc", workdir / "bare-bundle"
        self.image = image
        self.allocation = AddressPool(workdir / "bare-orgs.json", "172.27.0.0/16").allocate("barefloor", ORG)

    async def prepare(self) -> None:
        holder = new_namespaces(IdRange(RANGE_START))  # a netns of its own, as `ip netns add` makes: the floor
        try:  # pays for no user namespace of its own, only for a network namespace made before it runs
            await create_network(self.allocation, holder.pid)
        finally:
            holder.close()
        self.bundle.mkdir()
        await run(["runc", "spec", "--bundle", str(self.bundle)])
        config = json.loads((self.bundle / "config.json").read_text())
        config["root"] = {"path": self.image.rootfs, "readonly": True}
        config["process"].update(args=list(HTTPD), terminal=False)
        config["linux"]["namespaces"] = [
            n if n["type"] != "network" else {"type": "network", "path": self.allocation.netns_path}
            for n in config["linux"]["namespaces"]
        ]
        config["linux"]["cgroupsPath"] = "/aerodrome-bench/bare"
        (self.bundle / "config.json").write_text(json.dumps(config))

    async def start(self) -> None:
        argv = ["runc", "--root", str(self.root), "run", "-d", "--bundle", str(self.bundle), "bare"]
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await asyncio.wait_for(proc.wait(), 30)
        await answers(self.allocation.ipv4)

    async def runc(self, *args: str) -> None:
        await run(["runc", "--root", str(self.root), *args, "bare"], timeout=30)

    async def close(self) -> None:
        await run(["runc", "--root", str(self.root), "delete", "--force", "bare"], check=False)
        await delete_network(self.allocation)
        _remove_cgroup_parents()


def _remove_cgroup_parents() -> None:
    for parent in Path("/sys/fs/cgroup").glob("*/aerodrome-bench"):
        parent.rmdir()


def figures(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]


async def measure(runs: int, workdir: Path) -> dict[str, list[float]]:
    store = ImageStore(workdir / "images")
    image = await store.import_archive(await build_busybox_archive(workdir / "busybox.tar"), "bench/busybox:latest")
    runtime = RuncRuntime(workdir / "runtime", store, ipv4_pool=POOL, egress=False)
    bare = Bare(workdir, image)
    await bare.prepare()
    samples: dict[str, list[float]] = {}
    try:
        for _ in range(runs):
            await one_round(runtime, bare, image, samples)
    finally:
        await bare.close()
        for leftover in runtime.layout.machine_ids():
            await runtime.destroy(leftover)
        await runtime.close()
        await forget_orgs([runtime.pool.subnet_of(s) for s in runtime.pool.slots.values()], [])
        await uninstall(POOL)
    return samples


async def one_round(runtime: RuncRuntime, bare: Bare, image: ImageInfo, samples: dict[str, list[float]]) -> None:
    def add(name: str, value: float) -> None:
        samples.setdefault(name, []).append(value)

    add("bare runc run -d → HTTP", await timed(bare.start))
    add("bare runc pause", await timed(lambda: bare.runc("pause")))
    add("bare runc resume", await timed(lambda: bare.runc("resume")))
    add("bare runc delete -f", await timed(lambda: bare.runc("delete", "--force")))
    spec = SandboxSpec(machine_id(), "bench", "bench", ORG, image.digest, HTTPD)
    info = None

    async def create() -> None:
        nonlocal info
        info = await runtime.create(spec)

    add("create", await timed(create))
    assert info is not None
    address = info.private_ipv4

    async def start() -> None:
        await runtime.start(spec.machine_id)
        await answers(address)

    add("start → HTTP", await timed(start))
    add("suspend", await timed(lambda: runtime.suspend(spec.machine_id)))
    add("resume", await timed(lambda: runtime.resume(spec.machine_id)))
    add("stop (SIGINT)", await timed(lambda: runtime.stop(spec.machine_id, signal.SIGINT, 10)))
    add("destroy", await timed(lambda: runtime.destroy(spec.machine_id)))


def report(samples: dict[str, list[float]]) -> None:
    floor = figures(samples["bare runc run -d → HTTP"])[0]
    print(f"{'operation':<28}{'p50 ms':>9}{'p90 ms':>9}{'x floor':>9}   (floor: bare runc run -d → HTTP p50)")
    for name, values in samples.items():
        p50, p90 = figures(values)
        print(f"{name:<28}{p50:>9.2f}{p90:>9.2f}{p50 / floor:>9.2f}")
    start = figures(samples["start → HTTP"])[0]
    print(f"\nstart / bare runc: {start / floor:.2f} (target ≤ 1.5)")
    print(f"resume p50: {figures(samples['resume'])[0]:.2f} ms (target ≤ 10 ms)")
    print(f"create p50: {figures(samples['create'])[0]:.2f} ms (target ≤ 50 ms, image cached)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="aerodrome-bench-runtime-"))
    try:
        report(asyncio.run(measure(args.runs, workdir)))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
