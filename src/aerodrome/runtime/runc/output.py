"""A machine's stdout and stderr, as the host keeps them: one file the machine's processes append to, read by
the daemon from a cursor and let go of once read.

runc hands the container the file itself (`machine.log`, opened O_APPEND), so the machine writes it directly
and the daemon never blocks on a pipe. The daemon treats the file as the machine's: it is opened through
`safefs` (no symlink followed, only a regular file with one link, O_NONBLOCK), read with bounded `pread`s, and
its consumed part is punched out (fallocate PUNCH_HOLE) rather than the file rotated: offsets stay valid for
the O_APPEND writer and the reader alike, and the disk holds only what is not yet read, at most `keep` bytes
(the sweep punches older bytes even when nobody reads them). A cursor names the file by device and inode, so a
file made anew (a machine re-created) is read from its start.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
from pathlib import Path

from aerodrome.core import InvalidArgumentError, OutputChunk, OutputCursor
from aerodrome.runtime import safefs

log = logging.getLogger(__name__)

OUTPUT_KEEP_BYTES = 4 * 1024 * 1024  # unread output kept on disk per machine; older bytes are dropped
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
_refused: set[Path] = set()  # files already logged as refused, so a planted one is said once


def _open(path: Path) -> int | None:
    """The output file opened for reading and punching, or None (absent, or not a plain file of its own)."""
    try:
        fd = safefs.open_regular(path.parent, "/" + path.name, os.O_RDWR, where="in the machine's directory")
    except FileNotFoundError:
        return None
    except (InvalidArgumentError, OSError) as exc:
        if path not in _refused:
            _refused.add(path)
            log.warning("not reading the output of %s: %s", path.parent.name, exc)
        return None
    if os.fstat(fd).st_nlink != 1:  # a hard link would hand over whatever file it shares
        os.close(fd)
        if path not in _refused:
            _refused.add(path)
            log.warning("not reading the output of %s: %s has other links", path.parent.name, path.name)
        return None
    _refused.discard(path)
    return fd


def _punch(fd: int, length: int) -> None:
    """Free the file's first `length` bytes (its size stays); a filesystem without holes keeps them."""
    if length > 0:
        _libc.fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, 0, length)


def read_output(path: Path, cursor: OutputCursor, limit: int, keep: int = OUTPUT_KEEP_BYTES) -> OutputChunk:
    """Up to `limit` bytes after `cursor`, never more than the newest `keep`; what lies before `cursor` is let go."""
    fd = _open(path)
    if fd is None:
        return OutputChunk(b"", cursor)
    try:
        found = os.fstat(fd)
        identity = f"{found.st_dev}:{found.st_ino}"
        same = cursor.file == identity and cursor.offset <= found.st_size
        offset = cursor.offset if same else 0
        _punch(fd, offset)
        start = max(offset, found.st_size - keep)
        data = os.pread(fd, min(limit, found.st_size - start), start) if found.st_size > start else b""
        return OutputChunk(data, OutputCursor(identity, start + len(data)), skipped=start - offset)
    finally:
        os.close(fd)


def bound_output(path: Path, keep: int = OUTPUT_KEEP_BYTES) -> None:
    """Free all but the newest `keep` bytes of the file, read or not (the reader skips what is older)."""
    fd = _open(path)
    if fd is None:
        return
    with contextlib.suppress(OSError):
        _punch(fd, os.fstat(fd).st_size - keep)
    os.close(fd)
