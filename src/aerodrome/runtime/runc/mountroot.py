"""Whether a path is the root of a mount, asked of the path itself (statx's STATX_ATTR_MOUNT_ROOT): a constant
cost, where reading the mount table grows with every running machine (each holds an overlay, a scratch mount
and a netns name in it)."""

from __future__ import annotations

import ctypes
import errno
import os

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_NO_AUTOMOUNT = 0x800
STATX_TYPE = 0x1
STATX_ATTR_MOUNT_ROOT = 0x2000
_ATTRIBUTES = 8  # offsets in struct statx
_ATTRIBUTES_MASK = 56
_STATX_SIZE = 256

_libc = ctypes.CDLL(None, use_errno=True)
_statx = getattr(_libc, "statx", None)
if _statx is not None:
    _statx.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p)


def is_mount_root(path: str) -> bool | None:
    """Whether `path` (never followed when a symlink) is a mount's root; None when the kernel or libc cannot say
    (before Linux 5.8 or glibc 2.28): then only the mount table knows."""
    if _statx is None:
        return None
    buffer = ctypes.create_string_buffer(_STATX_SIZE)
    if _statx(AT_FDCWD, os.fsencode(path), AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_TYPE, buffer) != 0:
        error = ctypes.get_errno()
        if error in (errno.ENOENT, errno.ENOTDIR):
            return False
        raise OSError(error, f"statx {path}: {os.strerror(error)}")
    supported = int.from_bytes(buffer.raw[_ATTRIBUTES_MASK : _ATTRIBUTES_MASK + 8], "little")
    if not supported & STATX_ATTR_MOUNT_ROOT:
        return None
    return bool(int.from_bytes(buffer.raw[_ATTRIBUTES : _ATTRIBUTES + 8], "little") & STATX_ATTR_MOUNT_ROOT)
