"""One run of a machine: a fresh network and rootfs, `runc run`, and the teardown after it ends.

A machine holds kernel network resources (netns, veth pair) only while it runs: created and stopped machines
keep just their address allocation, so thousands of them can wait on a host for their first request.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from aerodrome.core import SandboxSpec, fault_point
from aerodrome.runtime.runc import bundle, containers, guestfs, scratch, userns
from aerodrome.runtime.runc.cgroups import MachineCgroup, cgroups_path
from aerodrome.runtime.runc.layout import (
    RECORD_ERRORS,
    MachinePaths,
    read_json,
    set_aside,
    traversable_dirs,
    write_json,
)
from aerodrome.runtime.runc.netpool import NetPool
from aerodrome.runtime.runc.network import (
    AddressPool,
    Allocation,
    connect_netns,
    create_netns,
    delete_network,
    named_only,
    network_exists,
)
from aerodrome.runtime.runc.runc import Runc
from aerodrome.runtime.runc.supervisor import process_start_time
from aerodrome.runtime.runc.userns import IdRange


@dataclass(frozen=True, slots=True)
class Run:
    """What one start needs beyond the spec: the image rootfs, addresses, ids, and its config builder."""

    spec: SandboxSpec
    lower: str
    network: Allocation
    ids: IdRange
    uid: int
    gid: int
    reserve: int  # bytes of the host's data filesystem a start must leave free
    compat_32bit: bool = False  # let 32-bit programs' system calls through seccomp
    pool: scratch.ImagePool | None = None  # formatted writable-layer images, ready for first starts
    resolvers: tuple[str, ...] = ()  # the host's resolver addresses for machines (none: it runs none)
    fly_dir: Path | None = None  # the host directory that is the machine's /.fly (its API socket)
    container_lowers: dict[str, str] | None = None  # a multi-container machine: each container's image rootfs
    netpool: NetPool | None = None  # prepared netns and veth pairs, taken instead of built


async def launch(runc: Runc, paths: MachinePaths, run: Run) -> tuple[int, int | None]:
    """Bring the machine up from a clean rootfs; returns the host pid of its init and its start time.

    The machine's user and network namespaces come first: a prepared slot of the pool, or made now (a paused
    clone of the daemon holds them, and the netns is named while the rootfs is prepared). The veth pair is
    connected while runc starts the container, whose wrapper holds the program back until the daemon writes
    on its stdin.
    """
    spec, network = run.spec, run.network
    paths.network_ready.unlink(missing_ok=True)
    userns.kill_stale_holder(paths.holder)  # a start cut short by a daemon's death may have left one
    slot = run.netpool.take(network) if run.netpool is not None else None
    if slot is not None:
        namespaces = slot.claim(network, run.ids, paths.holder)
        named: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        named.set_result(None)
    else:
        namespaces = userns.new_namespaces(run.ids, paths.holder)
        named = asyncio.ensure_future(create_netns(network, namespaces.pid))
    gate_read, gate_write = os.pipe()
    links: asyncio.Future[None] | None = None
    try:
        scratch.check_reserve(paths.dir, run.reserve)
        guestfs.unmount(paths.rootfs)
        await _mount_scratch(paths, spec.rootfs_bytes, run.pool)
        if paths.upper.exists():
            await asyncio.to_thread(guestfs.discard_upper, paths)
        guestfs.mount_overlay(paths, run.lower, run.ids, namespaces.userns_fd)
        fault_point("runtime.start.rootfs_mounted")
        system = bundle.system_files(spec, network.ipv4, network.ipv6, run.resolvers)
        await asyncio.to_thread(guestfs.write_files, paths.rootfs, (*system, *spec.files), run.ids.base)
        for stale in (paths.stop_requested, paths.pid_file):
            stale.unlink(missing_ok=True)
        sources = _attach_volumes(paths, spec, namespaces.userns_fd)
        config = bundle.build_config(
            spec,
            uid=run.uid,
            gid=run.gid,
            ids=run.ids,
            userns_path=namespaces.userns_path,
            netns_path=network.netns_path,
            volume_sources=sources,
            rootfs=str(paths.rootfs),
            cgroups_path=cgroups_path(spec.machine_id),
            compat_32bit=run.compat_32bit,
            fly_dir=str(run.fly_dir) if run.fly_dir else None,
        )
        if spec.containers:
            lowers = run.container_lowers or {}
            config["mounts"] += containers.prepare_roots(
                paths, spec, lowers, run.ids, namespaces.userns_fd, system, sources
            )
        await named
        fault_point("runtime.start.netns_created")
        connect = slot.connect(network) if slot is not None else connect_netns(network, run.resolvers)
        links = asyncio.ensure_future(connect)
        pid = await runc.run_detached(spec.machine_id, paths, orjson.dumps(config), stdin=gate_read)
        await links
        fault_point("runtime.start.runc_created")
        os.write(gate_write, bundle.GO)
        paths.network_ready.touch()
        fault_point("runtime.start.released")
    except BaseException:
        await asyncio.gather(named, *([links] if links else []), return_exceptions=True)
        await runc.delete(spec.machine_id)
        guestfs.unmount(paths.rootfs)
        guestfs.unmount(paths.scratch)
        await delete_network(network, wait=False)
        raise
    finally:
        os.close(gate_read)
        os.close(gate_write)
        namespaces.close()
        _detach_volumes(paths)
        if spec.containers:
            containers.release_roots(paths)
        if run.netpool is not None:
            run.netpool.refill(network)
    start_time = process_start_time(pid)
    # Not durable: after a host crash nothing runs, and this pid means nothing (see `write_json`).
    write_json(paths.started, {"pid": pid, "start_time": start_time, "started_at": time.time()}, durable=False)
    return pid, start_time


async def _mount_scratch(paths: MachinePaths, size: int, pool: scratch.ImagePool | None) -> None:
    """The filesystem that bounds the machine's writes, taken ready-made from `pool` at its first start (or when
    its size changed), else made now."""
    if guestfs.is_mounted(paths.scratch):
        return  # an earlier start got this far
    if not _has_size(paths.scratch_image, size) and not (pool and pool.take(size, paths.scratch_image)):
        await scratch.prepare_image(paths.scratch_image, size)
    scratch.mount_image(paths.scratch_image, paths.scratch)


def _has_size(image: Path, size: int) -> bool:
    try:
        return os.stat(image).st_size == size
    except FileNotFoundError:
        return False


def _attach_volumes(paths: MachinePaths, spec: SandboxSpec, userns_fd: int) -> tuple[str, ...]:
    """Each volume idmapped for this machine on `volumes/<n>`, the sources runc binds into it."""
    sources = []
    for index, mount in enumerate(spec.mounts):
        target = paths.volumes / str(index)
        guestfs.unmount(target)
        traversable_dirs(target)
        userns.attach_idmapped(mount.host_path, userns_fd, target)
        sources.append(str(target))
    return tuple(sources)


def _detach_volumes(paths: MachinePaths) -> None:
    """The machine holds its own copies of the volumes' mounts once it runs; the host's go."""
    if not paths.volumes.exists():
        return
    for target in paths.volumes.iterdir():
        guestfs.unmount(target)
        target.rmdir()


def network_ready(paths: MachinePaths) -> bool:
    """Whether a container found running got past its start (its program runs, with its network).

    A machine started by an older version, which kept the mark in its state directory, is adopted as it runs.
    """
    return paths.network_ready.exists() or (paths.dir / "state" / "network").exists()


async def teardown(runc: Runc, machine_id: str, paths: MachinePaths, network: Allocation | None) -> None:
    """Remove what one run left: the container, its rootfs mount and writes, its network."""
    await runc.delete(machine_id)
    guestfs.unmount(paths.rootfs)
    if network is not None:
        # The kernel finishes removing the veth in the background; the next start clears what is left.
        await delete_network(network, wait=False)
    await asyncio.to_thread(guestfs.discard_upper, paths)  # while mounted: `discard` hands the blocks back
    await _release_scratch(paths)
    for stale in (paths.started, paths.stop_requested, paths.pid_file, paths.network_ready):
        stale.unlink(missing_ok=True)


async def clear_unfinished_start(runc: Runc, machine_id: str, paths: MachinePaths, network: Allocation) -> None:
    """Undo a start the daemon did not live to finish (or a network an older version built at create)."""
    paths.network_ready.unlink(missing_ok=True)
    userns.kill_stale_holder(paths.holder)
    _detach_volumes(paths)
    if await runc.state(machine_id) is not None or guestfs.is_mounted(paths.rootfs):
        await runc.delete(machine_id)
        guestfs.unmount(paths.rootfs)
    await _release_scratch(paths)
    if network_exists(network):
        await delete_network(network)


async def _release_scratch(paths: MachinePaths) -> None:
    """Unmount the machine's write layer; an image whose filesystem lives on (still held) is left to it, and the
    next start takes a fresh one."""
    device = os.stat(paths.scratch).st_dev if guestfs.is_mounted(paths.scratch) else None
    guestfs.unmount(paths.scratch)
    if await asyncio.to_thread(scratch.still_attached, paths.scratch_image, device):
        paths.scratch_image.unlink(missing_ok=True)


def recorded_network(paths: MachinePaths, record: dict[str, Any] | None) -> Allocation | None:
    """The machine's addresses: in its record, or beside it where an older version kept them."""
    data = (record or {}).get("network") or read_json(paths.dir / "network.json")
    return None if data is None else Allocation.from_json(data)


def read_started(paths: MachinePaths) -> dict[str, Any] | None:
    """The running instance recorded at its start (`pid`, `start_time`), or None: none recorded, or one that did
    not read (set aside; recovery then asks the kernel)."""
    try:
        started = read_json(paths.started)
        if started is not None and (type(started["pid"]) is not int or not _number_or_none(started["start_time"])):
            raise TypeError("pid or start_time is not a number")
    except RECORD_ERRORS as error:
        set_aside(paths.quarantine, paths.dir.name, paths.started, error, then="its pid comes from runc")
        return None
    return started if isinstance(started, dict) else None


def _number_or_none(value: object) -> bool:
    return value is None or type(value) is int


async def end_unreadable(runc: Runc, machine_id: str, paths: MachinePaths) -> None:
    """End whatever runs of a machine whose record did not read: without its spec and addresses it cannot be
    adopted. Its netns and veth are found by the names its id gives them."""
    await runc.delete(machine_id)
    guestfs.unmount(paths.rootfs)
    _detach_volumes(paths)
    guestfs.unmount(paths.scratch)
    await delete_network(named_only(machine_id))
    for stale in (paths.started, paths.stop_requested, paths.pid_file, paths.network_ready):
        stale.unlink(missing_ok=True)


async def remove(runc: Runc, pool: AddressPool, machine_id: str, paths: MachinePaths) -> None:
    """Remove every trace of a machine from the host, and free its addresses."""
    await runc.delete(machine_id)
    userns.kill_stale_holder(paths.holder)
    guestfs.unmount(paths.rootfs)
    guestfs.unmount(paths.scratch)
    try:
        allocation = recorded_network(paths, read_json(paths.record))
    except RECORD_ERRORS:  # its addresses are unknown: only its netns and veth, named by its id, can go
        allocation = None
    await delete_network(allocation or named_only(machine_id))
    if allocation is not None:
        pool.release(allocation)
    MachineCgroup(machine_id).remove_leftovers()
    _detach_volumes(paths)
    containers.release_roots(paths)
    await asyncio.to_thread(shutil.rmtree, paths.dir, True)
    await asyncio.to_thread(shutil.rmtree, paths.fly, True)
    for directory in (paths.volumes, paths.rootfs, paths.mounts):
        with contextlib.suppress(FileNotFoundError):
            directory.rmdir()
