"""A machine's writable layer on a filesystem of its own, so that its size is bounded.

Each machine's overlay upper and work directories live on a sparse ext4 image (`rootfs.img`, `rootfs.size_gb`
of the config) attached to a loop device and mounted while the machine runs: a write past the size is ENOSPC
inside the machine, and the host's disk, the database and every other tenant see nothing of it. The image is
made at the first start (mkfs of a sparse file: about 10 ms), kept between runs, and emptied on every stop;
mounted with `discard`, what the machine deletes goes back to the host's disk.

The loop device is attached with ioctls rather than `losetup` (a process per start costs milliseconds) and
with autoclear, so the kernel frees it as soon as the filesystem is unmounted, even after a daemon crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import os
from pathlib import Path

from aerodrome.core import UnavailableError
from aerodrome.runtime.process import run

LOOP_CTL_GET_FREE = 0x4C82
LOOP_CONFIGURE = 0x4C0A
LO_FLAGS_AUTOCLEAR = 4
LO_NAME_SIZE = 64
LO_KEY_SIZE = 32
MKFS_TIMEOUT = 60.0
#: The host keeps this much of its data filesystem free for the database and the daemon's own files: no start
#: is let in below it, since machines' layers are sparse and would fill it first.
DEFAULT_RESERVE_BYTES = 1024 * 1024 * 1024

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
MS_NOSUID = 0x2
MS_NODEV = 0x4


class _LoopInfo64(ctypes.Structure):
    _fields_ = (
        ("lo_device", ctypes.c_uint64),
        ("lo_inode", ctypes.c_uint64),
        ("lo_rdevice", ctypes.c_uint64),
        ("lo_offset", ctypes.c_uint64),
        ("lo_sizelimit", ctypes.c_uint64),
        ("lo_number", ctypes.c_uint32),
        ("lo_encrypt_type", ctypes.c_uint32),
        ("lo_encrypt_key_size", ctypes.c_uint32),
        ("lo_flags", ctypes.c_uint32),
        ("lo_file_name", ctypes.c_uint8 * LO_NAME_SIZE),
        ("lo_crypt_name", ctypes.c_uint8 * LO_NAME_SIZE),
        ("lo_encrypt_key", ctypes.c_uint8 * LO_KEY_SIZE),
        ("lo_init", ctypes.c_uint64 * 2),
    )


class _LoopConfig(ctypes.Structure):
    _fields_ = (
        ("fd", ctypes.c_uint32),
        ("block_size", ctypes.c_uint32),
        ("info", _LoopInfo64),
        ("reserved", ctypes.c_uint64 * 8),
    )


class ImagePool:
    """A few formatted images of each size recently asked for, made in the background, so that a machine's
    first start takes one (a rename) instead of waiting for mkfs. Each holds about 4 MiB of the host's disk."""

    def __init__(self, directory: Path, keep: int = 2) -> None:
        self.directory = directory
        self.keep = keep
        self._filling: dict[int, asyncio.Task[None]] = {}

    def take(self, size: int, destination: Path) -> bool:
        """Move a ready image of `size` to `destination`; False when there is none. Refills in the background."""
        self._refill(size)
        for ready in sorted(self.directory.glob(f"{size}-*.img")):
            with contextlib.suppress(FileNotFoundError):
                os.replace(ready, destination)
                return True
        return False

    def _refill(self, size: int) -> None:
        if size in self._filling and not self._filling[size].done():
            return
        self._filling[size] = asyncio.get_running_loop().create_task(self._fill(size))

    async def _fill(self, size: int) -> None:
        self.directory.mkdir(mode=0o700, exist_ok=True)
        while len(list(self.directory.glob(f"{size}-*.img"))) < self.keep:
            try:
                await prepare_image(self.directory / f"{size}-{os.urandom(6).hex()}.img", size)
            except Exception:  # the next start formats its own image, and says what failed
                return

    async def close(self) -> None:
        for task in self._filling.values():
            task.cancel()
        await asyncio.gather(*self._filling.values(), return_exceptions=True)


async def prepare_image(image: Path, size: int) -> None:
    """Make the sparse ext4 image of `size` bytes unless it is there with that size."""
    with contextlib.suppress(FileNotFoundError):
        if os.stat(image).st_size == size:
            return
    staging = image.with_name(image.name + ".new")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(staging)
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)
    # No journal: the layer is thrown away on every stop, so a crash costs it nothing a journal would save.
    argv = ["mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", "-E", "lazy_itable_init=1,nodiscard"]
    await run([*argv, str(staging)], timeout=MKFS_TIMEOUT)
    os.replace(staging, image)


def still_attached(image: Path, device: int | None = None) -> bool:
    """Whether a loop device is still backed by `image`: a filesystem unmounted lazily while something (a dying
    process of the machine, its overlay) still held it. Mounting the file again through a second loop device
    would put two filesystems on one image; seen under load as `Structure needs cleaning` at the next start.

    `device` (st_dev of the mount, read before unmounting it) is the only one to ask; without it every loop
    device is, which grows with the host's running machines."""
    wanted = os.path.realpath(image)  # the kernel shows the resolved path
    if device is not None:
        backing = Path(f"/sys/dev/block/{os.major(device)}:{os.minor(device)}/loop/backing_file")
        try:
            return backing.read_text().strip() == wanted
        except OSError:
            return False  # detached already
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        with contextlib.suppress(OSError):
            if backing.read_text().strip() == wanted:
                return True
    return False


def mount_image(image: Path, target: Path) -> None:
    """Attach `image` to a free loop device (freed again at unmount) and mount it on `target`."""
    target.mkdir(mode=0o700, exist_ok=True)
    device, loop = _attach(image)
    try:  # the open device keeps it attached until the mount holds it
        flags = MS_NOSUID | MS_NODEV
        if _libc.mount(device.encode(), os.fsencode(target), b"ext4", flags, b"discard") != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"mount {image} on {target}: {os.strerror(err)}")
    finally:
        os.close(loop)


def _attach(image: Path) -> tuple[str, int]:
    """A loop device backed by `image`, and an open descriptor on it: autoclear detaches the device once the
    last holder is gone."""
    backing = os.open(image, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        for _ in range(16):  # another process may take the free device between the two calls
            control = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
            try:
                number = fcntl.ioctl(control, LOOP_CTL_GET_FREE)
            finally:
                os.close(control)
            device = f"/dev/loop{number}"
            loop = os.open(device, os.O_RDWR | os.O_CLOEXEC)
            try:
                config = _LoopConfig(fd=backing)
                config.info.lo_flags = LO_FLAGS_AUTOCLEAR
                fcntl.ioctl(loop, LOOP_CONFIGURE, config)
                return device, loop
            except BaseException as exc:
                os.close(loop)
                if not isinstance(exc, OSError) or exc.errno != errno.EBUSY:
                    raise
        raise OSError(errno.EBUSY, "no free loop device")
    finally:
        os.close(backing)


def check_reserve(data_dir: Path, reserve: int) -> None:
    """Refuse a start while the host's data filesystem has less than `reserve` bytes free."""
    stats = os.statvfs(data_dir)
    free = stats.f_bavail * stats.f_frsize
    if free < reserve:
        raise UnavailableError(
            f"insufficient disk space on the host: {free // (1024 * 1024)} MiB free, "
            f"{reserve // (1024 * 1024)} MiB are kept for the platform"
        )
