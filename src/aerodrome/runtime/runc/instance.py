"""One run of a machine: a fresh network and rootfs, `runc run`, and the teardown after it ends.

A machine holds kernel network resources (netns, veth pair) only while it runs: created and stopped machines
keep just their address allocation, so thousands of them can wait on a host for their first request.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from typing import Any

from aerodrome.core import SandboxSpec
from aerodrome.runtime.runc import bundle, guestfs
from aerodrome.runtime.runc.cgroups import MachineCgroup
from aerodrome.runtime.runc.layout import MachinePaths, read_json, write_json
from aerodrome.runtime.runc.network import (
    AddressPool,
    Allocation,
    connect_netns,
    create_netns,
    delete_network,
    network_exists,
)
from aerodrome.runtime.runc.runc import Runc
from aerodrome.runtime.runc.supervisor import process_start_time


async def launch(
    runc: Runc, paths: MachinePaths, spec: SandboxSpec, lower: str, network: Allocation
) -> tuple[int, int | None]:
    """Bring the machine up from a clean rootfs; returns the host pid of its init and its start time.

    The netns is made while the rootfs is prepared; the veth pair is built while runc starts the container,
    whose wrapper holds the program back until the network is marked ready.
    """
    ready = paths.state / bundle.NETWORK_READY
    ready.unlink(missing_ok=True)
    gated = _gated(paths)
    namespace = asyncio.ensure_future(create_netns(network))
    links: asyncio.Future[None] | None = None
    try:
        guestfs.unmount(paths.rootfs)
        if paths.upper.exists():
            await asyncio.to_thread(guestfs.discard_upper, paths)
        guestfs.mount_overlay(paths, lower)
        system = bundle.system_files(spec, network.ipv4, network.ipv6)
        guestfs.write_files(paths.rootfs, (*system, *spec.files))
        for stale in (paths.exit_status, paths.stop_requested, paths.pid_file):
            stale.unlink(missing_ok=True)
        _make_tick(paths)
        await namespace
        links = asyncio.ensure_future(connect_netns(network))
        if not gated:  # a bundle written before the wrapper waited for the network
            await links
        pid = await runc.run_detached(spec.machine_id, paths)
        await links
        ready.touch()
    except BaseException:
        await asyncio.gather(namespace, *([links] if links else []), return_exceptions=True)
        await runc.delete(spec.machine_id)
        guestfs.unmount(paths.rootfs)
        await delete_network(network, wait=False)
        raise
    start_time = process_start_time(pid)
    write_json(paths.started, {"pid": pid, "start_time": start_time, "started_at": time.time()})
    return pid, start_time


def _gated(paths: MachinePaths) -> bool:
    return f"{bundle.STATE_DIR}/{bundle.NETWORK_READY}" in paths.config.read_text()


def _make_tick(paths: MachinePaths) -> None:
    tick = paths.state / bundle.TICK
    if not tick.exists():
        os.mkfifo(tick)
        os.chmod(tick, 0o666)  # the wrapper runs as the machine's user


def network_ready(paths: MachinePaths) -> bool:
    """Whether a container found running got past its start (its program runs, with its network)."""
    return (paths.state / bundle.NETWORK_READY).exists() or not _gated(paths)


async def teardown(runc: Runc, machine_id: str, paths: MachinePaths, network: Allocation | None) -> None:
    """Remove what one run left: the container, its rootfs mount and writes, its network."""
    await runc.delete(machine_id)
    guestfs.unmount(paths.rootfs)
    if network is not None:
        # The kernel finishes removing the veth in the background; the next start clears what is left.
        await delete_network(network, wait=False)
    await asyncio.to_thread(guestfs.discard_upper, paths)
    for stale in (paths.started, paths.stop_requested, paths.pid_file, paths.state / bundle.NETWORK_READY):
        stale.unlink(missing_ok=True)


async def clear_unfinished_start(runc: Runc, machine_id: str, paths: MachinePaths, network: Allocation) -> None:
    """Undo a start the daemon did not live to finish (or a network an older version built at create)."""
    (paths.state / bundle.NETWORK_READY).unlink(missing_ok=True)
    if await runc.state(machine_id) is not None or guestfs.is_mounted(paths.rootfs):
        await runc.delete(machine_id)
        guestfs.unmount(paths.rootfs)
    if network_exists(network):
        await delete_network(network)


def recorded_network(paths: MachinePaths, record: dict[str, Any] | None) -> Allocation | None:
    """The machine's addresses: in its record, or beside it where an older version kept them."""
    data = (record or {}).get("network") or read_json(paths.dir / "network.json")
    return None if data is None else Allocation.from_json(data)


async def remove(runc: Runc, pool: AddressPool, machine_id: str, paths: MachinePaths) -> None:
    """Remove every trace of a machine from the host, and free its addresses."""
    await runc.delete(machine_id)
    guestfs.unmount(paths.rootfs)
    allocation = recorded_network(paths, read_json(paths.record))
    if allocation is not None:
        await delete_network(allocation)
        pool.release(allocation)
    MachineCgroup(machine_id).remove_leftovers()
    await asyncio.to_thread(shutil.rmtree, paths.dir, True)
