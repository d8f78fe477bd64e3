"""A machine's root filesystem: an overlay over the shared image rootfs with a throw-away upper layer.

Mounts go through the mount(2) syscall directly: a `mount` process costs milliseconds on every start.
Files are written into the guest by walking it one component at a time with O_NOFOLLOW, so a symlink in
the image cannot send a write outside the machine's root.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
from pathlib import Path, PurePosixPath

from aerodrome.core import GuestFile, InvalidArgumentError
from aerodrome.runtime.runc.layout import MachinePaths, traversable_dirs
from aerodrome.runtime.runc.userns import IdRange, idmapped_tree

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
MNT_DETACH = 2


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def is_mounted(path: Path) -> bool:
    target = str(path)
    with open("/proc/self/mounts") as f:
        return any(line.split(" ", 2)[1] == target for line in f)


def mount_overlay(paths: MachinePaths, lower: str, ids: IdRange, userns_fd: int) -> None:
    """Mount a fresh overlay on `paths.rootfs`: an empty upper layer over the image, idmapped to `ids`.

    The image keeps its own ids on disk (shared by every machine of the image); the machine sees them in its
    range through an idmapped clone of the image's tree, and the upper layer holds what it writes under its
    host ids. The upper's root is the machine root's, so `/` inside belongs to the machine.
    """
    for directory in (paths.upper, paths.work):
        directory.mkdir(mode=0o700, exist_ok=True)
    traversable_dirs(paths.rootfs)
    # The upper's root is the merged root: it takes the image root's mode, and belongs to the machine's root.
    os.chmod(paths.upper, os.stat(lower).st_mode & 0o7777)
    os.chown(paths.upper, ids.base, ids.base)
    with idmapped_tree(lower, userns_fd) as mapped_lower:
        options = f"lowerdir={mapped_lower},upperdir={paths.upper},workdir={paths.work}"
        _check(
            _libc.mount(b"overlay", str(paths.rootfs).encode(), b"overlay", 0, options.encode()),
            f"mount {paths.rootfs}",
        )


def unmount(path: Path) -> None:
    """Unmount (lazily, so a process still holding a file does not block it); a no-op when not mounted."""
    while is_mounted(path):
        result = _libc.umount2(str(path).encode(), MNT_DETACH)
        if result != 0 and ctypes.get_errno() not in (errno.EINVAL, errno.ENOENT):
            _check(result, f"umount {path}")


def discard_upper(paths: MachinePaths) -> None:
    """Throw away the machine's writes: the next start sees the image as it was pulled."""
    for directory in (paths.upper, paths.work):
        shutil.rmtree(directory, ignore_errors=True)


def write_files(rootfs: Path, files: tuple[GuestFile, ...], owner: int = 0) -> None:
    """Write `files` into the mounted guest root, refusing any path that would leave it.

    What is written belongs to host id `owner` (the machine's root), so the machine can read and replace it.
    """
    root_fd = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY)
    try:
        for guest_file in files:
            _write_one(root_fd, guest_file, owner)
    finally:
        os.close(root_fd)


def check_guest_path(guest_path: str) -> list[str]:
    """The components of an absolute guest path; InvalidArgumentError if it is not one or climbs with `..`."""
    path = PurePosixPath(guest_path)
    if not path.is_absolute() or ".." in path.parts or len(path.parts) < 2:
        raise InvalidArgumentError(f"invalid file guest_path {guest_path!r}: must be an absolute path inside the guest")
    return list(path.parts[1:])


def _write_one(root_fd: int, guest_file: GuestFile, owner: int) -> None:
    *dirs, name = check_guest_path(guest_file.guest_path)
    dir_fd = os.dup(root_fd)
    try:
        for part in dirs:
            try:
                os.mkdir(part, 0o755, dir_fd=dir_fd)
                os.chown(part, owner, owner, dir_fd=dir_fd, follow_symlinks=False)
            except FileExistsError:
                pass
            try:
                next_fd = os.open(part, os.O_DIRECTORY | os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
            except OSError as exc:
                raise InvalidArgumentError(
                    f"invalid file guest_path {guest_file.guest_path!r}: {part!r} is not a directory in the guest"
                ) from exc
            os.close(dir_fd)
            dir_fd = next_fd
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        try:
            fd = os.open(name, flags, guest_file.mode & 0o7777, dir_fd=dir_fd)
        except OSError as exc:
            raise InvalidArgumentError(f"invalid file guest_path {guest_file.guest_path!r}: {exc.strerror}") from exc
        try:
            os.write(fd, guest_file.data)
            os.fchown(fd, owner, owner)
            os.fchmod(fd, guest_file.mode & 0o7777)
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)


def resolve_user(rootfs: Path, user: str) -> tuple[int, int]:
    """Turn an image's or config's `user[:group]` (names or numbers) into (uid, gid) using the guest's files."""
    if not user:
        return 0, 0
    name, _, group = user.partition(":")
    uid, gid = _lookup(rootfs / "etc/passwd", name, "user")
    if group:
        gid = _lookup(rootfs / "etc/group", group, "group")[0]
    return uid, gid


def _lookup(table: Path, key: str, kind: str) -> tuple[int, int]:
    if key.isdigit():
        number = int(key)
        return number, _gid_of(table, number) if kind == "user" else number
    try:
        lines = table.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        fields = line.split(":")
        if len(fields) >= 4 and fields[0] == key:
            return int(fields[2]), int(fields[3]) if kind == "user" else int(fields[2])
    raise InvalidArgumentError(f"{kind} {key!r} not found in the image")


def _gid_of(passwd: Path, uid: int) -> int:
    try:
        for line in passwd.read_text().splitlines():
            fields = line.split(":")
            if len(fields) >= 4 and fields[2] == str(uid):
                return int(fields[3])
    except OSError:
        pass
    return uid
