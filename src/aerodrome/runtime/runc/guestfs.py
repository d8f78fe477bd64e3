"""A machine's root filesystem: an overlay over the shared image rootfs with a throw-away upper layer.

Mounts go through the mount(2) syscall directly: a `mount` process costs milliseconds on every start.
Files are written into the guest, and the image's passwd and group read, through `safefs`: openat2 refusing
any link, FIFO, device or mount crossing on the path, so the image's tree cannot send the daemon anywhere else
on the host, nor block it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import stat
from collections.abc import Sequence
from pathlib import Path

from aerodrome.core import GuestFile, InvalidArgumentError, SandboxSpec
from aerodrome.runtime import safefs
from aerodrome.runtime.runc.layout import MachinePaths, traversable_dirs
from aerodrome.runtime.runc.mountroot import is_mount_root
from aerodrome.runtime.runc.userns import IdRange, idmapped_tree

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
MNT_DETACH = 2
MS_BIND = 0x1000
TABLE_LIMIT = 1 << 20  # of /etc/passwd and /etc/group: a real one is a few kilobytes
IN_IMAGE = "in the image"
IN_MACHINE = "in the machine"


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def is_mounted(path: Path) -> bool:
    target = str(path)
    if (root := is_mount_root(target)) is not None:
        return root
    with open("/proc/self/mounts") as f:
        return any(line.split(" ", 2)[1] == target for line in f)


def mount_overlay(paths: MachinePaths, lower: str, ids: IdRange, userns_fd: int) -> None:
    """Mount a fresh overlay on `paths.rootfs`: an empty upper layer over the image, idmapped to `ids`.

    The image keeps its own ids on disk (shared by every machine of the image); the machine sees them in its
    range through an idmapped clone of the image's tree, and the upper layer holds what it writes under its
    host ids.
    """
    traversable_dirs(paths.rootfs)
    # The mounted rootfs is the whole guest tree, and its files keep the guest's modes (most readable by
    # others): the machine's mount directory lets through host root and the machine's root (runc mounts the
    # rootfs and volumes from inside the machine's user namespace), never any other user of the host.
    os.chown(paths.mounts, 0, ids.base)
    os.chmod(paths.mounts, 0o710)
    mount_overlay_at(paths.rootfs, paths.upper, paths.work, lower, ids, userns_fd)


def mount_overlay_at(target: Path, upper: Path, work: Path, lower: str, ids: IdRange, userns_fd: int) -> None:
    """An overlay of the image `lower`, idmapped to `ids`, with `upper` and `work` for its writes, on `target`."""
    for directory in (upper, work):
        directory.mkdir(mode=0o700, exist_ok=True)
    # The upper's root is the merged root: 0755 as in every image (an unpack's own root has the daemon's
    # umask, whatever the image says), and the machine's root owns it.
    os.chmod(upper, 0o755)
    os.chown(upper, ids.base, ids.base)
    with idmapped_tree(lower, userns_fd) as mapped_lower:
        options = f"lowerdir={mapped_lower},upperdir={upper},workdir={work}"
        _check(_libc.mount(b"overlay", str(target).encode(), b"overlay", 0, options.encode()), f"mount {target}")


def bind_mount(source: Path, target: Path) -> None:
    """Bind `source` (a directory the daemon made) on `target`."""
    _check(_libc.mount(str(source).encode(), str(target).encode(), None, MS_BIND, None), f"bind {target}")


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


def write_files(rootfs: Path, files: Sequence[GuestFile], owner: int = 0) -> None:
    """Write `files` into the mounted guest root, refusing any path through a link, a FIFO or a device.

    What is written (and any directory made for it) belongs to host id `owner`, the machine's root.
    """
    with safefs.opened_root(rootfs) as root_fd:
        for guest_file in files:
            _write_one(root_fd, guest_file, owner)


def check_image(rootfs: Path, spec: SandboxSpec, files: Sequence[GuestFile]) -> None:
    """Refuse, before any start, an image that does not know the machine's user, whose working directory is not a
    plain directory, or whose tree would stop start from writing `files`.

    Blocking (it reads the image): call it off the event loop.
    """
    resolve_user(rootfs, spec.user)
    with safefs.opened_root(rootfs) as root_fd:
        _check_working_dir(root_fd, spec.working_dir)
        for guest_file in files:
            found = safefs.lookup(root_fd, guest_file.guest_path, where=IN_IMAGE)
            if found is not None:
                safefs.check_regular(found, guest_file.guest_path, where=IN_IMAGE)


def _check_working_dir(root_fd: int, working_dir: str) -> None:
    """runc makes and enters the working directory after pivot_root, inside the machine's root, so it cannot
    reach the host; but one through a link or a FIFO fails the start with runc's words. Say it at create."""
    if not working_dir.strip("/"):
        return
    try:
        found = safefs.lookup(root_fd, working_dir, where=IN_IMAGE)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"invalid working directory: {exc.message}") from None
    if found is not None and not stat.S_ISDIR(found.st_mode):
        raise InvalidArgumentError(
            f"invalid working directory: {working_dir} {IN_IMAGE} is {safefs.describe(found)}, not a directory"
        )


def check_guest_path(guest_path: str) -> list[str]:
    """The components of an absolute guest path; InvalidArgumentError if it is not one or climbs with `..`."""
    try:
        return safefs.guest_parts(guest_path)
    except InvalidArgumentError:
        raise InvalidArgumentError(
            f"invalid file guest_path {guest_path!r}: must be an absolute path inside the guest"
        ) from None


def _write_one(root_fd: int, guest_file: GuestFile, owner: int) -> None:
    parts = check_guest_path(guest_file.guest_path)
    mode = guest_file.mode & 0o7777
    try:
        dir_fd = safefs.open_dir(root_fd, "/" + "/".join(parts[:-1]), where=IN_MACHINE, owner=owner)
        try:
            fd = safefs.create_file(dir_fd, guest_file.guest_path, mode, where=IN_MACHINE)
        finally:
            os.close(dir_fd)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"cannot write file {guest_file.guest_path}: {exc.message}") from None
    try:
        safefs.write_all(fd, guest_file.data)
        os.fchown(fd, owner, owner)
        os.fchmod(fd, mode)  # an existing file keeps its mode through O_TRUNC; a new one had the umask applied
    finally:
        os.close(fd)


def resolve_user(rootfs: Path, user: str) -> tuple[int, int]:
    """Turn an image's or config's `user[:group]` (names or numbers) into (uid, gid) using the image's files.

    Blocking (it reads the image): call it off the event loop.
    """
    if not user:
        return 0, 0
    name, _, group = user.partition(":")
    if _numeric(name):
        uid = _id(name, "user")
        gid = uid if group else _gid_of(rootfs, uid)
    else:
        uid, gid = _lookup(_table(rootfs, "/etc/passwd"), name, "user")
    if group:
        gid = _id(group, "group") if _numeric(group) else _lookup(_table(rootfs, "/etc/group"), group, "group")[0]
    return uid, gid


def _table(rootfs: Path, guest_path: str) -> list[list[str]]:
    """The image's passwd or group file as fields; an image without one has no names in it."""
    try:
        data = safefs.read_file(rootfs, guest_path, TABLE_LIMIT, where=IN_IMAGE)
    except FileNotFoundError:
        return []
    return [line.split(":") for line in data.decode(errors="replace").splitlines()]


def _lookup(table: list[list[str]], key: str, kind: str) -> tuple[int, int]:
    for fields in table:
        if len(fields) >= 4 and fields[0] == key:
            return _id(fields[2], kind), _id(fields[3] if kind == "user" else fields[2], kind)
    raise InvalidArgumentError(f"{kind} {key!r} not found in the image")


def _gid_of(rootfs: Path, uid: int) -> int:
    for fields in _table(rootfs, "/etc/passwd"):
        if len(fields) >= 4 and fields[2] == str(uid):
            return _id(fields[3], "user")
    return uid


def _numeric(text: str) -> bool:
    return text.isascii() and text.isdigit()  # str.isdigit alone takes "²", which int() refuses


def _id(text: str, kind: str) -> int:
    # 2**32 - 1 is (uid_t)-1, "no id" to the kernel
    if not _numeric(text) or int(text) >= 2**32 - 1:
        raise InvalidArgumentError(f"invalid {kind} id {text[:32]!r} in the image")
    return int(text)
