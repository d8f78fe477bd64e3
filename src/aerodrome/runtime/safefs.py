"""Opening files inside an image's or a machine's root without following anything its tenant planted there.

The daemon runs as root on the host, and every byte under an image's rootfs is the tenant's: a symlink there
points wherever the tenant likes on the host, and a FIFO blocks whoever opens it. So a guest path is resolved
by openat2(2) with RESOLVE_IN_ROOT|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS|RESOLVE_NO_XDEV: `..` cannot climb
out of the root, a symlink anywhere on the path is refused rather than followed (even one that stays inside),
and so is a mount crossing. The last component is first opened O_PATH, which opens nothing (a FIFO cannot block
it, no device driver is called), and fstat must show a regular file before it is opened for real, O_NONBLOCK.
Reads are bounded: a file larger than asked for is an error, never a truncated read.

A plant becomes InvalidArgumentError naming the guest path and what is wrong with it, never what it points to.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath

from aerodrome.core import InvalidArgumentError

# openat2 has one number on every architecture of the common syscall table (x86_64, aarch64, riscv64, ...).
SYS_OPENAT2 = 437
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_IN_ROOT = 0x10
RESOLVE = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV
# openat2 rejects, rather than ignores, flags that mean nothing with O_PATH.
_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_ALWAYS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# The kernel reports a resolution raced by a rename or mount elsewhere as EAGAIN: try again a few times.
_RETRIES = 8
_KINDS = {
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFDIR: "a directory",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_have_openat2 = True  # until the kernel says ENOSYS


def guest_parts(guest_path: str) -> list[str]:
    """The components of an absolute guest path; InvalidArgumentError if it is not one or climbs with `..`."""
    path = PurePosixPath(guest_path)
    if not path.is_absolute() or ".." in path.parts or len(path.parts) < 2 or "\0" in guest_path:
        raise InvalidArgumentError(f"invalid guest path {guest_path!r}: must be an absolute path inside the guest")
    return list(path.parts[1:])


@contextlib.contextmanager
def opened_root(root: Path) -> Iterator[int]:
    """A directory fd on a root the daemon itself made (an image's rootfs, a machine's mount point)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


def read_file(root: Path, guest_path: str, limit: int, *, where: str = "in the guest") -> bytes:
    """The whole of a regular file under `root`, at most `limit` bytes; FileNotFoundError if it is absent."""
    parts = guest_parts(guest_path)
    with opened_root(root) as root_fd:
        fd = _open_regular(root_fd, "", parts, os.O_RDONLY, where)
    try:
        if os.fstat(fd).st_size > limit:
            raise _too_large(parts, where, limit)
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, min(limit + 1 - size, 1 << 20)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:  # it grew after fstat
                raise _too_large(parts, where, limit)
        return b"".join(chunks)
    finally:
        os.close(fd)


def open_regular(root: Path, guest_path: str, flags: int, *, where: str = "in the guest") -> int:
    """An fd on the regular file at `guest_path` under `root`, opened with `flags` (O_NONBLOCK, never followed);
    FileNotFoundError if it is absent, InvalidArgumentError if anything else is there."""
    with opened_root(root) as root_fd:
        return _open_regular(root_fd, "", guest_parts(guest_path), flags, where)


def lookup(root_fd: int, guest_path: str, *, where: str = "in the guest") -> os.stat_result | None:
    """What is at `guest_path`, not followed (None if it or a parent is absent); refuses a path through a plant."""
    parts = guest_parts(guest_path)
    try:
        fd = _resolve(root_fd, "", parts, _PATH_FLAGS, where)
    except FileNotFoundError:
        return None
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def check_regular(found: os.stat_result, guest_path: str, *, where: str = "in the guest") -> None:
    """InvalidArgumentError unless `found` (an fstat, never followed) is a regular file."""
    if not stat.S_ISREG(found.st_mode):
        raise InvalidArgumentError(
            f"{guest_path} {where} is {describe(found)}; aerodrome reads and writes only regular files"
        )


def describe(found: os.stat_result) -> str:
    """What a stat shows, in words: "a FIFO", "a symbolic link", ..."""
    return _KINDS.get(stat.S_IFMT(found.st_mode), "a regular file" if stat.S_ISREG(found.st_mode) else "unknown")


def open_dir(root_fd: int, guest_dir: str, *, where: str = "in the guest", owner: int | None = None) -> int:
    """The directory `guest_dir`, made (0755, belonging to host id `owner` if given) where missing; each
    component must be a real directory."""
    parts = guest_parts(guest_dir) if guest_dir != "/" else []
    fd = os.dup(root_fd)
    try:
        for depth, part in enumerate(parts):
            made = False
            with contextlib.suppress(FileExistsError):  # mkdir never follows a link, nor opens what is there
                os.mkdir(part, 0o755, dir_fd=fd)
                made = True
            next_fd = _resolve(fd, _join(parts[:depth]), [part], os.O_RDONLY | os.O_DIRECTORY, where)
            os.close(fd)
            fd = next_fd
            if made:
                os.fchmod(fd, 0o755)  # whatever the daemon's umask: the machine's users must reach what is in it
                if owner is not None:
                    os.fchown(fd, owner, owner)
    except BaseException:
        os.close(fd)
        raise
    return fd


def create_file(dir_fd: int, guest_path: str, mode: int, *, where: str = "in the guest") -> int:
    """An fd for writing `guest_path`, whose directory is `dir_fd`: a new file, or an existing regular file
    truncated to nothing."""
    *dirs, name = guest_parts(guest_path)
    at = _join(dirs)
    try:  # O_EXCL: what is opened is the file this call made, whatever was planted under the name before
        return _resolve(dir_fd, at, [name], os.O_WRONLY | os.O_CREAT | os.O_EXCL, where, mode=mode)
    except FileExistsError:
        pass
    # O_TRUNC at open: overlayfs then copies none of a large lower file up, only to discard it.
    return _open_regular(dir_fd, at, [name], os.O_WRONLY | os.O_TRUNC, where)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _open_regular(dir_fd: int, at: str, parts: list[str], flags: int, where: str) -> int:
    """Open a regular file, having checked through an O_PATH fd that it is one before opening it for real."""
    guest_path = at + _join(parts)
    probe = _resolve(dir_fd, at, parts, _PATH_FLAGS, where)
    try:
        before = os.fstat(probe)
        check_regular(before, guest_path, where=where)
        fd = _resolve(dir_fd, at, parts, flags, where)
    finally:
        os.close(probe)
    after = os.fstat(fd)
    if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino) or not stat.S_ISREG(after.st_mode):
        os.close(fd)
        raise InvalidArgumentError(f"{guest_path} {where} changed while it was being opened")
    return fd


def _resolve(dir_fd: int, at: str, parts: list[str], flags: int, where: str, *, mode: int = 0) -> int:
    """openat2 of `parts` under `dir_fd` (guest path `at`), its refusals turned into errors naming the guest path."""
    flags |= (os.O_NOFOLLOW | os.O_CLOEXEC) if flags & os.O_PATH else _ALWAYS
    relative = "/".join(parts)
    try:
        return _openat2(dir_fd, relative, flags, mode) if _have_openat2 else _walk(dir_fd, relative, flags, mode)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EXDEV):
            raise
        depth, kind = _culprit(dir_fd, parts)
        culprit, goal = at + _join(parts[:depth]), at + _join(parts)
        suffix = f" (on the way to {goal})" if goal != culprit else ""
        raise InvalidArgumentError(
            f"{culprit} {where} is {kind}; aerodrome follows no links, crosses no mounts and opens no FIFOs or "
            f"devices in a guest{suffix}"
        ) from None


def _culprit(dir_fd: int, parts: list[str]) -> tuple[int, str]:
    """How many components lead to the first that is not a plain directory on the same mount, and what it is.

    fstatat without following opens nothing; each directory on the way is held O_PATH, never followed.
    """
    device = os.fstat(dir_fd).st_dev
    fd = os.dup(dir_fd)
    try:
        for depth, part in enumerate(parts, 1):
            try:
                found = os.stat(part, dir_fd=fd, follow_symlinks=False)
                if found.st_dev != device:
                    return depth, "a mount point"
                if not stat.S_ISDIR(found.st_mode) or depth == len(parts):
                    return depth, describe(found)
                next_fd = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except OSError:
                break  # it changed meanwhile: say only that the path was refused
            os.close(fd)
            fd = next_fd
    finally:
        os.close(fd)
    return len(parts), "not reachable without following a link or leaving its filesystem"


def _join(parts: Sequence[str]) -> str:
    return "".join("/" + part for part in parts)


def _openat2(dir_fd: int, relative: str, flags: int, mode: int) -> int:
    global _have_openat2
    how = _OpenHow(flags, mode, RESOLVE)
    path = relative.encode()
    for _ in range(_RETRIES):
        fd = _libc.syscall(SYS_OPENAT2, dir_fd, path, ctypes.byref(how), ctypes.sizeof(how))
        if fd >= 0:
            return int(fd)
        code = ctypes.get_errno()
        if code == errno.ENOSYS:
            _have_openat2 = False
            return _walk(dir_fd, relative, flags, mode)
        if code not in (errno.EAGAIN, errno.EINTR):
            raise OSError(code, os.strerror(code))
    raise OSError(errno.EAGAIN, "path resolution kept racing a rename or mount")


def _walk(dir_fd: int, relative: str, flags: int, mode: int) -> int:
    """openat2's refusals, one component at a time: only for a kernel without openat2 (before 5.6).

    Each component is opened O_NOFOLLOW (ELOOP on a link) and O_DIRECTORY (ENOTDIR on a FIFO, without opening
    it), and must stay on the device it started on; `..` never reaches here (guest_parts refuses it).
    """
    device = os.fstat(dir_fd).st_dev
    *dirs, last = relative.split("/")
    fd = os.dup(dir_fd)
    try:
        for part in dirs:
            next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | _ALWAYS, dir_fd=fd)
            os.close(fd)
            fd = next_fd
            if os.fstat(fd).st_dev != device:
                raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        found = os.open(last, flags, mode, dir_fd=fd)
    finally:
        os.close(fd)
    if os.fstat(found).st_dev != device:
        os.close(found)
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
    return found


def _too_large(parts: list[str], where: str, limit: int) -> InvalidArgumentError:
    return InvalidArgumentError(f"{_join(parts)} {where} is larger than the {limit} bytes aerodrome reads of it")
