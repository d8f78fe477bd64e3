"""Fixtures that run the conformance suite against RuncRuntime, and check that nothing is left on the host."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from aerodrome.cli.pools import unrouted_pool
from aerodrome.core import ImageInfo, Runtime
from aerodrome.runtime.images import ImageStore
from aerodrome.runtime.process import run
from aerodrome.runtime.registry import EmbeddedRegistry
from aerodrome.runtime.runc import RuncRuntime
from aerodrome.runtime.runc.cgroups import MachineCgroup
from aerodrome.runtime.runc.firewall import forget_org, uninstall
from aerodrome.runtime.runc.layout import mounts_dir
from aerodrome.runtime.runc.network import host_iface_name, org_prefix6
from tests.runtime.conformance import Harness

# The runtime tests' pools, apart from the daemon's default (172.30.0.0/16) and the test servers': one for each
# process (a pytest-xdist worker), reserved with the same lock files as the servers' pools.
RUNTIME_POOL_OCTETS = (26, 27, 28, 29)
ORGS_USED = 2  # the conformance suite uses organisations 1 and 2

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runc") is None or shutil.which("catatonit") is None,
    reason="needs root, runc and catatonit to run machines",
)


@pytest.fixture(scope="session")
def image_store_root(registry: EmbeddedRegistry, busybox_image: str) -> Iterator[tuple[Path, ImageInfo]]:
    """The busybox image pulled and unpacked once for the session."""
    root = Path(tempfile.mkdtemp(prefix="aerodrome-runc-images-"))
    try:
        info = asyncio.run(ImageStore(root, registries=(registry.url,)).pull(busybox_image))
        yield root, info
    finally:
        shutil.rmtree(root, ignore_errors=True)
        asyncio.run(_forget_test_orgs())


@functools.cache
def runtime_pool() -> str:
    """This process's pool for the runtime tests, held until it ends."""
    return unrouted_pool(RUNTIME_POOL_OCTETS)


async def _forget_test_orgs() -> None:
    pool = ipaddress.IPv4Network(runtime_pool())
    subnets4 = [str(s) for s in pool.subnets(new_prefix=24)][:ORGS_USED]
    for subnet4, org in zip(subnets4, (1, 2), strict=True):
        await forget_org(subnet4, str(org_prefix6(org)))  # kept while another runtime's machines of `org` run
    await uninstall(runtime_pool())


async def host_leftovers(root: Path, machine_ids: list[str]) -> list[str]:
    """Everything of these machines still on the host; the id "" stands for any machine under `root`."""
    listing = (await run(["runc", "--root", str(root / "runc"), "list", "-q"], check=False)).text.split()
    found = [f"runc container {c}" for c in listing if any(m in c for m in machine_ids)]
    mounts_root = mounts_dir(root)
    for under in (root, mounts_root):
        found += [f"mount {target}" for target in _mounts_under(under) if any(m in target for m in machine_ids)]
    loops = (await run(["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"], check=False)).text
    found += [f"loop device {line}" for line in loops.splitlines() if str(root) in line]
    for machine_id in filter(None, machine_ids):
        found += [f"cgroup {p}" for p in MachineCgroup(machine_id).leftovers()]
        for directory in (root / "machines" / machine_id, mounts_root / machine_id):
            if directory.exists():
                found.append(f"directory {directory}")
    return found


def _mounts_under(root: Path) -> list[str]:
    with open("/proc/mounts") as f:
        return [line.split()[1] for line in f if line.split()[1].startswith(str(root))]


async def network_leftovers(machine_ids: list[str]) -> list[str]:
    """The netns and veths of these machines still on the host (others' machines may run meanwhile)."""
    names = {host_iface_name(m): m for m in machine_ids}
    links = (await run(["ip", "-o", "link", "show"])).text
    netns = (await run(["ip", "netns", "list"])).text
    found = [f"veth {line.split()[1]}" for line in links.splitlines() if line.split()[1].split("@")[0] in names]
    found += [f"netns {n}" for n in netns.split() if n.removeprefix("aerodrome-") in machine_ids]
    return found


@pytest.fixture
async def harness(tmp_path: Path, image_store_root: tuple[Path, ImageInfo]) -> AsyncIterator[Harness]:
    """A RuncRuntime under `tmp_path`; afterwards every machine is destroyed and the host checked clean."""
    store_root, image = image_store_root
    root = tmp_path / "runtime"
    runtimes: list[RuncRuntime] = []

    async def open_runtime() -> Runtime:
        runtime = RuncRuntime(root, ImageStore(store_root), ipv4_pool=runtime_pool(), egress=False)
        runtimes.append(runtime)
        return runtime

    async def cpu_quota(machine_id: str) -> float:
        quota, period = MachineCgroup(machine_id).cpu_quota()
        return quota / period

    async def leftovers(machine_id: str) -> list[str]:
        return await host_leftovers(root, [machine_id]) + await network_leftovers([machine_id])

    first = await open_runtime()
    try:
        yield Harness(runtime=first, image=image, reopen=open_runtime, leftovers=leftovers, cpu_quota=cpu_quota)
    finally:
        for runtime in runtimes:
            await runtime.close()
        cleaner = RuncRuntime(root, ImageStore(store_root), ipv4_pool=runtime_pool(), egress=False)
        machine_ids = cleaner.layout.machine_ids()
        for machine_id in machine_ids:
            await cleaner.destroy(machine_id)
        await cleaner.close()
        assert await host_leftovers(root, ["", *machine_ids]) + await network_leftovers(machine_ids) == []
