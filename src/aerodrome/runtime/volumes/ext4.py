"""ext4 on an image file or a device: make, inspect, check and grow, through e2fsprogs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aerodrome.core import RuntimeFailureError, VolumeUsage
from aerodrome.runtime.process import ToolError, run

_SUPERBLOCK_OFFSET = 1024
_MAGIC_OFFSET = 56
_EXT_MAGIC = b"\x53\xef"  # 0xEF53, little-endian
_GIB = 1 << 30


def tool_timeout(size_bytes: int) -> float:
    """A timeout for a whole-filesystem pass (fsck, resize): a floor plus time proportional to the size."""
    return 60.0 + 30.0 * size_bytes / _GIB


@dataclass(frozen=True, slots=True)
class Superblock:
    """The counters of an ext4 superblock that size and usage are computed from."""

    block_size: int
    block_count: int
    free_blocks: int
    reserved_blocks: int

    @property
    def size_bytes(self) -> int:
        return self.block_size * self.block_count

    def usage(self) -> VolumeUsage:
        available = max(self.free_blocks - self.reserved_blocks, 0)
        return VolumeUsage(self.block_size, self.block_count, self.free_blocks, available)


def has_ext4(path: Path) -> bool:
    """True when `path` starts with an ext2/3/4 superblock (a "raw" volume has none)."""
    with path.open("rb") as image:
        image.seek(_SUPERBLOCK_OFFSET + _MAGIC_OFFSET)
        return image.read(2) == _EXT_MAGIC


async def make(path: Path, size_bytes: int) -> None:
    """Make an ext4 filesystem filling `path`.

    4 KiB blocks even on tiny volumes, since they may grow to many GB; no lazy initialisation, so that no
    kernel thread keeps writing to a fresh volume; no reserved blocks, because the whole volume is the
    machine's data; nodiscard, because the sparse file has nothing to discard.
    """
    argv = ["mkfs.ext4", "-q", "-F", "-b", "4096", "-m", "0"]
    argv += ["-E", "lazy_itable_init=0,lazy_journal_init=0,nodiscard", str(path)]
    await run(argv, timeout=tool_timeout(size_bytes))


async def read_superblock(path: Path) -> Superblock:
    """The filesystem's size and free space, read with `dumpe2fs -h` (the filesystem must not be mounted)."""
    done = await run(["dumpe2fs", "-h", str(path)], timeout=60.0)
    fields = {}
    for line in done.text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    try:
        return Superblock(
            block_size=int(fields["Block size"]),
            block_count=int(fields["Block count"]),
            free_blocks=int(fields["Free blocks"]),
            reserved_blocks=int(fields.get("Reserved block count", "0")),
        )
    except (KeyError, ValueError) as exc:
        raise RuntimeFailureError(f"unreadable ext4 superblock in {path.name}: {exc}") from exc


async def check(path: Path, size_bytes: int) -> None:
    """`e2fsck -fp`: a forced check that repairs what is safe to repair (resize2fs refuses an unchecked fs)."""
    done = await run(["e2fsck", "-f", "-p", str(path)], timeout=tool_timeout(size_bytes), check=False)
    # 1 and 2 mean "errors corrected"; 4 and above mean errors were left or the check failed.
    if done.returncode >= 4:
        raise ToolError(done.argv, done.returncode, done.stderr + done.stdout)


async def grow_offline(path: Path, size_bytes: int) -> bool:
    """Grow an unmounted filesystem (on an image file or a loop device) to `size_bytes`; True if it was smaller."""
    superblock = await read_superblock(path)
    if size_bytes - superblock.size_bytes < superblock.block_size:
        return False
    await check(path, size_bytes)
    await run(["resize2fs", str(path)], timeout=tool_timeout(size_bytes))
    return True


async def grow_online(device: str) -> bool:
    """Grow a mounted filesystem to fill its device; False when the kernel refuses.

    The kernel demands CAP_SYS_RESOURCE for online resizing; sandboxes often withhold it ("Permission denied
    to resize filesystem"), and then the filesystem grows at the next mount instead.
    """
    try:
        await run(["resize2fs", device], timeout=tool_timeout(0))
    except ToolError:
        return False
    return True
