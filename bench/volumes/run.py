"""Volume benchmark: create + first mount latency, write throughput against the host disk, snapshot cost.

Run as root: `.venv/bin/python bench/volumes/run.py [--write-mb 200] [--snapshot-mb 256]`.
The host-disk baseline is a plain file in the same directory as the volume images, written the same way in the
same run; the ratio is what matters, since absolute figures depend on the disk and on its other tenants.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from aerodrome.runtime.volumes import LoopVolumeBackend, images

MIB = 1 << 20
GIB = 1 << 30


def write_sequential(path: Path, total_bytes: int) -> float:
    """dd-like: 1 MiB writes, then one fsync; return MB/s (decimal MB, as dd reports)."""
    chunk = os.urandom(MIB)
    started = time.perf_counter()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(total_bytes // MIB):
            os.write(descriptor, chunk)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    elapsed = time.perf_counter() - started
    path.unlink()
    return total_bytes / elapsed / 1e6


async def create_and_mount(backend: LoopVolumeBackend, count: int) -> tuple[list[float], list[float]]:
    """Milliseconds to create a 1 GiB ext4 volume, and to mount it the first time."""
    creates, mounts = [], []
    for index in range(count):
        started = time.perf_counter()
        await backend.create(f"vol_lat{index}", GIB, "ext4")
        created = time.perf_counter()
        await backend.mount(f"vol_lat{index}")
        creates.append((created - started) * 1000)
        mounts.append((time.perf_counter() - created) * 1000)
    for index in range(count):
        await backend.delete(f"vol_lat{index}")
    return creates, mounts


async def throughput(root: Path, write_mb: int, rounds: int, direct_io: bool, preallocate: bool) -> dict[str, float]:
    """Median MB/s into a mounted volume (fresh, then rewritten) and into a host file, interleaved per round.

    The disk here is shared and noisy, so every round writes the volume and the host file back to back, and the
    ratio is taken per round before the median.
    """
    backend = LoopVolumeBackend(root, direct_io=direct_io, preallocate=preallocate)
    rates: dict[str, list[float]] = {"fresh": [], "rewrite": [], "host": [], "ratio_fresh": [], "ratio_rewrite": []}
    for index in range(rounds):
        volume_id = f"vol_tput{index}"
        await backend.create(volume_id, GIB, "ext4")
        mount_point = Path(await backend.mount(volume_id))
        try:
            # A fresh volume allocates its image file's blocks as it is written; a rewrite finds them allocated.
            rates["fresh"].append(write_sequential(mount_point / "bench.bin", write_mb * MIB))
            rates["host"].append(write_sequential(root / "host-bench.bin", write_mb * MIB))
            rates["rewrite"].append(write_sequential(mount_point / "bench.bin", write_mb * MIB))
        finally:
            await backend.delete(volume_id)
        rates["ratio_fresh"].append(rates["fresh"][-1] / rates["host"][-1])
        rates["ratio_rewrite"].append(rates["rewrite"][-1] / rates["host"][-1])
    return {name: statistics.median(values) for name, values in rates.items()}


async def snapshot_cost(backend: LoopVolumeBackend, data_mb: int) -> dict[str, float]:
    """Seconds to snapshot a mounted volume holding `data_mb` of data, then its parts timed one by one."""
    await backend.create("vol_snap", GIB, "ext4")
    image, mount_point = backend.image_path("vol_snap"), Path(await backend.mount("vol_snap"))
    write_sequential_keep(mount_point / "data.bin", data_mb * MIB)
    started = time.perf_counter()
    info = await backend.snapshot("vol_snap", "snap_bench")
    figures = {"total": time.perf_counter() - started, "stored_mib": info.size / MIB}
    await backend.unmount("vol_snap")
    copy = image.with_name("copy.img")
    started = time.perf_counter()
    await images.sparse_copy(image, copy)  # what runs while the filesystem is frozen
    figures["copy"] = time.perf_counter() - started
    started = time.perf_counter()
    images.publish(copy, copy)  # fsync of the copy
    figures["fsync"] = time.perf_counter() - started
    started = time.perf_counter()
    await images.content_digest(copy)
    figures["digest"] = time.perf_counter() - started
    copy.unlink()
    await backend.delete("vol_snap")
    await backend.delete_snapshot("snap_bench")
    return figures


def write_sequential_keep(path: Path, total_bytes: int) -> None:
    with path.open("wb") as handle:
        for _ in range(total_bytes // MIB):
            handle.write(os.urandom(MIB))
        handle.flush()
        os.fsync(handle.fileno())


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write-mb", type=int, default=200)
    parser.add_argument("--snapshot-mb", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--volumes", type=int, default=5)
    parser.add_argument("--dir", default="/var/tmp", help="a directory on the host disk under test")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="aerodrome-bench-volumes-", dir=args.dir))
    try:
        backend = LoopVolumeBackend(root)
        creates, mounts = await create_and_mount(backend, args.volumes)
        print(f"create 1 GiB ext4 volume: median {statistics.median(creates):7.1f} ms  (n={args.volumes})")
        print(f"first mount:              median {statistics.median(mounts):7.1f} ms")
        variants = {
            "direct-io loop  ": (True, False),
            "buffered loop   ": (False, False),
            "direct-io+prealloc": (True, True),
        }
        for label, (direct_io, preallocate) in variants.items():
            rate = await throughput(root, args.write_mb, args.rounds, direct_io, preallocate)
            print(
                f"write {args.write_mb} MB + fsync, {label}: fresh volume {rate['fresh']:4.0f} MB/s, "
                f"rewrite {rate['rewrite']:4.0f} MB/s, host file {rate['host']:4.0f} MB/s; "
                f"ratio fresh {rate['ratio_fresh']:.2f}x, rewrite {rate['ratio_rewrite']:.2f}x (target >= 0.8x)"
            )
        snap = await snapshot_cost(backend, args.snapshot_mb)
        per_gb = 1024 / args.snapshot_mb
        print(
            f"snapshot of a mounted volume with {args.snapshot_mb} MB of data: {snap['total'] * 1000:.0f} ms, "
            f"{snap['stored_mib']:.0f} MiB stored; extrapolated {snap['total'] * per_gb:.2f} s per GB of data"
        )
        print(
            f"  parts, per GB: copy (the frozen window) {snap['copy'] * per_gb:.2f} s, "
            f"fsync {snap['fsync'] * per_gb:.2f} s, digest {snap['digest'] * per_gb:.2f} s"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
