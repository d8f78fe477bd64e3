"""LoopVolumeBackend on real loop devices, real ext4 and real mounts; each test verifies it leaves none behind."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from aerodrome.core import FailedPreconditionError, InvalidArgumentError, NotFoundError, VolumeUsage
from aerodrome.runtime.volumes import LoopVolumeBackend, extended_size, needs_extend
from aerodrome.runtime.volumes.images import content_digest_sync
from tests.support.skips import skip_by_host

MIB = 1 << 20
SIZE = 16 * MIB
CAP_SYS_RESOURCE = 24
F = TypeVar("F", bound=Callable[..., Any])

_needs_loop = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/dev/loop-control"),
    reason="needs root and /dev/loop-control to attach loop devices",
)


def loop_test(test: F) -> F:
    """Marks a test that attaches loop devices and mounts filesystems."""
    marked: F = pytest.mark.root(_needs_loop(test))
    return marked


# -- helpers: plain blocking I/O, outside the coroutines -----------------------------------------------------------


def write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def fill_until_full(directory: Path) -> int:
    """Write until the filesystem refuses (short writes included); return the bytes written."""
    written = 0
    chunk = os.urandom(MIB)
    descriptor = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            written += os.write(descriptor, chunk)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return written


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def is_dir(path: str) -> bool:
    return Path(path).is_dir()


def resolved(path: Path) -> Path:
    return path.resolve()


def attached_loops(under: Path) -> list[str]:
    """Loop devices whose backing file lies anywhere under `under` (deleted files included)."""
    listing = subprocess.run(["losetup", "--list", "--json", "--output", "NAME,BACK-FILE"], capture_output=True)
    if not listing.stdout.strip():
        return []
    return [
        device["name"]
        for device in json.loads(listing.stdout)["loopdevices"]
        if (device.get("back-file") or "").startswith(str(under) + "/")
    ]


def mounts_under(under: Path) -> list[str]:
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [point for point in points if point.startswith(str(under) + "/")]


def fs_bytes(directory: str) -> int:
    stat = os.statvfs(directory)
    return stat.f_frsize * stat.f_blocks


def has_cap_sys_resource() -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> CAP_SYS_RESOURCE & 1)
    return False


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[LoopVolumeBackend]:
    """A backend under a temporary root; afterwards every mount and loop device under it is removed, then checked."""
    root = resolved(tmp_path)
    try:
        yield LoopVolumeBackend(root)
    finally:
        for point in reversed(mounts_under(root)):
            sh("fsfreeze", "--unfreeze", point, check=False)
            sh("umount", point, check=False)
        for device in attached_loops(root):
            sh("losetup", "--detach", device, check=False)
        assert mounts_under(root) == [], "a mount was left behind"
        assert attached_loops(root) == [], "a loop device was left behind"


# -- create, mount, unmount ----------------------------------------------------------------------------------------


@loop_test
async def test_bytes_survive_unmount_and_mount(backend: LoopVolumeBackend) -> None:
    await backend.create("vol_a", SIZE, "ext4")
    data = os.urandom(3 * MIB)
    write_synced(Path(await backend.mount("vol_a")) / "data.bin", data)
    await backend.unmount("vol_a")
    assert mounts_under(backend.mount_path("vol_a").parent) == []
    assert (Path(await backend.mount("vol_a")) / "data.bin").read_bytes() == data
    await backend.unmount("vol_a")
    await backend.unmount("vol_a")  # idempotent


@loop_test
async def test_image_is_sparse_and_sized(backend: LoopVolumeBackend) -> None:
    await backend.create("vol_a", SIZE, "ext4")
    image = backend.image_path("vol_a")
    assert image.stat().st_size == SIZE
    assert image.stat().st_blocks * 512 < SIZE // 2
    await backend.create("vol_a", SIZE, "ext4")  # idempotent
    assert [p.name for p in image.parent.iterdir()] == ["vol_a.img"]


@loop_test
async def test_preallocated_volume_reserves_its_size_and_snapshots_stay_sparse(backend: LoopVolumeBackend) -> None:
    reserving = LoopVolumeBackend(backend.image_path("vol_a").parent.parent, preallocate=True)
    await reserving.create("vol_a", SIZE, "ext4")
    assert reserving.image_path("vol_a").stat().st_blocks * 512 >= SIZE
    await reserving.extend("vol_a", 2 * SIZE)
    assert reserving.image_path("vol_a").stat().st_blocks * 512 >= 2 * SIZE
    assert (await reserving.snapshot("vol_a", "snap_1")).size < SIZE


@loop_test
async def test_create_discards_a_partial_image_left_by_a_crash(backend: LoopVolumeBackend) -> None:
    partial = backend.image_path("vol_a").with_name(".vol_a.img.partial")
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"half-written")
    await backend.create("vol_a", SIZE, "ext4")
    assert not partial.exists()
    assert is_dir(await backend.mount("vol_a"))
    await backend.unmount("vol_a")


@loop_test
async def test_second_mount_reuses_the_mount_and_loop_device(backend: LoopVolumeBackend) -> None:
    await backend.create("vol_a", SIZE, "ext4")
    first = await backend.mount("vol_a")
    assert await backend.mount("vol_a") == first
    assert len(attached_loops(backend.image_path("vol_a").parent)) == 1
    await backend.unmount("vol_a")
    assert attached_loops(backend.image_path("vol_a").parent) == []


@loop_test
async def test_mount_reuses_a_loop_device_left_attached(backend: LoopVolumeBackend) -> None:
    await backend.create("vol_a", SIZE, "ext4")
    image = backend.image_path("vol_a")
    leftover = sh("losetup", "--find", "--show", str(image))
    await backend.mount("vol_a")
    assert attached_loops(image.parent) == [leftover.stdout.strip()]
    await backend.unmount("vol_a")


@loop_test
async def test_fill_stops_at_the_size_limit(backend: LoopVolumeBackend) -> None:
    await backend.create("vol_a", SIZE, "ext4")
    written = fill_until_full(Path(await backend.mount("vol_a")))
    assert 8 * MIB < written <= SIZE
    usage = await backend.usage("vol_a")
    assert usage.blocks_avail * usage.block_size < MIB  # ext4 keeps a little back for delayed allocation
    image = backend.image_path("vol_a")
    assert image.stat().st_size == SIZE
    assert image.stat().st_blocks * 512 <= SIZE
    await backend.unmount("vol_a")


@loop_test
async def test_usage_mounted_and_unmounted(backend: LoopVolumeBackend) -> None:
    await backend.create("vol_a", SIZE, "ext4")
    empty = await backend.usage("vol_a")
    assert empty.bytes_total <= SIZE
    write_synced(Path(await backend.mount("vol_a")) / "data.bin", os.urandom(4 * MIB))
    mounted = await backend.usage("vol_a")
    assert mounted.bytes_used >= 4 * MIB
    await backend.unmount("vol_a")
    unmounted = await backend.usage("vol_a")
    assert unmounted.bytes_used - empty.bytes_used >= 4 * MIB


# -- extend ----------------------------------------------------------------------------------------------------


@loop_test
async def test_extend_unmounted_resizes_at_once(backend: LoopVolumeBackend) -> None:
    await backend.create("vol_a", SIZE, "ext4")
    data = os.urandom(MIB)
    write_synced(Path(await backend.mount("vol_a")) / "data.bin", data)
    before = fs_bytes(backend.mount_path("vol_a").as_posix())
    await backend.unmount("vol_a")
    assert await backend.extend("vol_a", 2 * SIZE) is True
    assert (await backend.usage("vol_a")).bytes_total == 2 * SIZE
    mount_point = await backend.mount("vol_a")
    assert fs_bytes(mount_point) > before + SIZE // 2
    assert (Path(mount_point) / "data.bin").read_bytes() == data
    await backend.unmount("vol_a")


@loop_test
async def test_extend_mounted_takes_effect_by_the_next_mount(backend: LoopVolumeBackend) -> None:
    await backend.create("vol_a", SIZE, "ext4")
    mount_point = await backend.mount("vol_a")
    before = fs_bytes(mount_point)
    grew_online = await backend.extend("vol_a", 2 * SIZE)
    assert (fs_bytes(mount_point) > before) is grew_online
    await backend.unmount("vol_a")
    assert fs_bytes(await backend.mount("vol_a")) > before + SIZE // 2
    await backend.unmount("vol_a")


@loop_test
async def test_extend_mounted_online(backend: LoopVolumeBackend) -> None:
    if not has_cap_sys_resource():
        skip_by_host("online ext4 resize needs CAP_SYS_RESOURCE, which this host withholds")
    await backend.create("vol_a", SIZE, "ext4")
    mount_point = await backend.mount("vol_a")
    before = fs_bytes(mount_point)
    assert await backend.extend("vol_a", 2 * SIZE) is True
    assert fs_bytes(mount_point) > before + SIZE // 2
    await backend.unmount("vol_a")


@loop_test
async def test_extend_never_shrinks(backend: LoopVolumeBackend) -> None:
    await backend.create("vol_a", SIZE, "ext4")
    with pytest.raises(InvalidArgumentError):
        await backend.extend("vol_a", SIZE // 2)
    assert backend.image_path("vol_a").stat().st_size == SIZE


# -- snapshots and forks ---------------------------------------------------------------------------------------


@loop_test
async def test_snapshot_of_a_mounted_volume_restores_identical_bytes(backend: LoopVolumeBackend) -> None:
    await backend.create("vol_a", SIZE, "ext4")
    data = os.urandom(2 * MIB)
    write_synced(Path(await backend.mount("vol_a")) / "data.bin", data)
    info = await backend.snapshot("vol_a", "snap_1")
    assert 2 * MIB < info.size < SIZE
    assert info.digest.startswith("sha256:")
    assert info.digest == content_digest_sync(backend.snapshot_path("snap_1"))
    assert await backend.snapshot("vol_a", "snap_1") == info  # idempotent
    await backend.create("vol_b", 2 * SIZE, "ext4", from_snapshot="snap_1")
    restored = Path(await backend.mount("vol_b"))
    assert (restored / "data.bin").read_bytes() == data
    assert fs_bytes(restored.as_posix()) > fs_bytes(backend.mount_path("vol_a").as_posix()) + SIZE // 2
    await backend.unmount("vol_a")
    await backend.unmount("vol_b")
    await backend.delete_snapshot("snap_1")
    await backend.delete_snapshot("snap_1")
    assert list(backend.snapshot_path("snap_1").parent.iterdir()) == []


@loop_test
async def test_snapshots_of_the_same_content_have_the_same_digest(backend: LoopVolumeBackend) -> None:
    await backend.create("vol_a", SIZE, "ext4")
    first = await backend.snapshot("vol_a", "snap_1")
    await backend.create("vol_b", SIZE, "ext4", from_snapshot="snap_1")
    assert (await backend.snapshot("vol_b", "snap_2")).digest == first.digest
    write_synced(Path(await backend.mount("vol_b")) / "x", b"x")
    await backend.unmount("vol_b")
    assert (await backend.snapshot("vol_b", "snap_3")).digest != first.digest


@loop_test
async def test_fork_of_a_mounted_volume(backend: LoopVolumeBackend) -> None:
    await backend.create("vol_a", SIZE, "ext4")
    data = os.urandom(MIB)
    write_synced(Path(await backend.mount("vol_a")) / "data.bin", data)
    await backend.create("vol_b", SIZE, "ext4", from_volume="vol_a")
    assert (Path(await backend.mount("vol_b")) / "data.bin").read_bytes() == data
    write_synced(backend.mount_path("vol_a") / "later.bin", b"after the fork")
    assert not (backend.mount_path("vol_b") / "later.bin").exists()
    await backend.unmount("vol_a")
    await backend.unmount("vol_b")


@loop_test
async def test_copies_refuse_missing_sources_and_smaller_sizes(backend: LoopVolumeBackend) -> None:
    with pytest.raises(NotFoundError):
        await backend.create("vol_b", SIZE, "ext4", from_snapshot="snap_none")
    with pytest.raises(NotFoundError):
        await backend.create("vol_b", SIZE, "ext4", from_volume="vol_none")
    await backend.create("vol_a", SIZE, "ext4")
    with pytest.raises(InvalidArgumentError):
        await backend.create("vol_b", SIZE // 2, "ext4", from_volume="vol_a")
    assert not backend.image_path("vol_b").exists()


# -- recovery and deletion -------------------------------------------------------------------------------------


@loop_test
async def test_recover_after_the_backend_is_dropped(backend: LoopVolumeBackend) -> None:
    await backend.create("vol_a", SIZE, "ext4")
    await backend.create("vol_b", SIZE, "ext4")
    mount_point = await backend.mount("vol_a")
    sh("fsfreeze", "--freeze", mount_point)  # as if a snapshot had been cut short
    sh("losetup", "--find", "--show", str(backend.image_path("vol_b")))  # as if a daemon died before mounting
    root = backend.image_path("vol_a").parent.parent
    del backend
    revived = LoopVolumeBackend(root)
    assert await revived.recover() == ["vol_a"]
    assert sh("fsfreeze", "--unfreeze", mount_point, check=False).returncode != 0, "recover() should have thawed it"
    assert len(attached_loops(root)) == 1
    assert await revived.mount("vol_a") == mount_point
    assert len(attached_loops(root)) == 1
    await revived.unmount("vol_a")


@loop_test
async def test_delete_leaves_no_loop_device_mount_or_file(backend: LoopVolumeBackend) -> None:
    await backend.create("vol_a", SIZE, "ext4")
    await backend.mount("vol_a")
    await backend.delete("vol_a")
    root = backend.image_path("vol_a").parent.parent
    assert mounts_under(root) == []
    assert attached_loops(root) == []
    assert list((root / "volumes").iterdir()) == []
    assert not backend.mount_path("vol_a").exists()
    await backend.delete("vol_a")  # idempotent
    with pytest.raises(NotFoundError):
        await backend.mount("vol_a")


@loop_test
async def test_raw_volume_is_a_sized_file_without_filesystem(backend: LoopVolumeBackend) -> None:
    await backend.create("vol_r", SIZE, "raw")
    assert backend.image_path("vol_r").stat().st_size == SIZE
    with pytest.raises(FailedPreconditionError):
        await backend.mount("vol_r")
    assert await backend.extend("vol_r", 2 * SIZE) is True
    assert backend.image_path("vol_r").stat().st_size == 2 * SIZE


@loop_test
async def test_invalid_arguments(backend: LoopVolumeBackend) -> None:
    for bad_id in ("../etc", "a/b", ".hidden", ""):
        with pytest.raises(InvalidArgumentError):
            await backend.create(bad_id, SIZE, "ext4")
    with pytest.raises(InvalidArgumentError):
        await backend.create("vol_a", SIZE, "xfs")
    with pytest.raises(InvalidArgumentError):
        await backend.create("vol_a", MIB, "ext4")
    with pytest.raises(NotFoundError):
        await backend.usage("vol_none")


# -- pure parts --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("used", "threshold", "expected"), [(79, 80, False), (80, 80, True), (99, 0, False)])
def test_needs_extend(used: int, threshold: int, expected: bool) -> None:
    usage = VolumeUsage(block_size=4096, blocks=100, blocks_free=100 - used, blocks_avail=100 - used)
    assert needs_extend(usage, threshold) is expected


def test_extended_size_stops_at_the_limit() -> None:
    assert extended_size(10, 5, 0) == 15
    assert extended_size(10, 5, 12) == 12
    assert extended_size(12, 5, 12) is None


def test_digest_ignores_how_zeros_are_stored(tmp_path: Path) -> None:
    payload = os.urandom(5000)
    dense, sparse = tmp_path / "dense", tmp_path / "sparse"
    dense.write_bytes(bytes(MIB) + payload + bytes(MIB))
    with sparse.open("wb") as handle:
        handle.truncate(2 * MIB + len(payload))
        handle.seek(MIB)
        handle.write(payload)
    assert sparse.stat().st_blocks < dense.stat().st_blocks
    assert content_digest_sync(dense) == content_digest_sync(sparse)
    sparse.write_bytes(b"\1" + bytes(MIB - 1) + payload + bytes(MIB))
    assert content_digest_sync(dense) != content_digest_sync(sparse)
