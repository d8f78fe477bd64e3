"""User namespaces: each machine's root is an unprivileged range of host ids, and the files it sees are idmapped.

Every machine gets 65 536 host ids of its own from a range aerodrome owns (recorded in /etc/subuid and
/etc/subgid, so other tools on the host never hand them out): its uid 0 is host uid `base`, its uid 1000 is
`base + 1000`. Its user namespace is made by the daemon before runc runs, together with the machine's network
namespace, so that the user namespace owns the netns (sysfs mounts, and ports below 1024 bind without extra
capabilities) while the machine's root still has no power over anything of the host's.

Files keep the ids an image or a volume wrote (0..65535) on disk, and the machine sees them shifted to its
range through idmapped mounts (mount_setattr(MOUNT_ATTR_IDMAP)): the image rootfs shared by every machine of
an image, and each volume, so a volume keeps its files' ownership whichever machine of the app mounts it.
Measured here: an idmapped clone of an image tree costs about 0.1 ms and a shifted-ownership chown of an image's
files grows with the image (about 1 ms per 100 files), so aerodrome uses idmapped mounts; a kernel without
them (before 5.12, or a filesystem without FS_ALLOW_IDMAP) is refused at start with one line.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import mmap
import os
import platform
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from aerodrome.core import CapacityError, fault_point

IDS_PER_MACHINE = 65_536
RANGE_START = 1 << 31  # far above any login user's ids, below the 32-bit limit
RANGE_COUNT = 1 << 30  # 16 384 machines' worth
SUBID_OWNER = "aerodrome"

_libc = ctypes.CDLL(None, use_errno=True)
_libc.clone.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)
_libc.syscall.restype = ctypes.c_long

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
CLONE_VM = 0x00000100
SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
SYS_MOUNT_SETATTR = 442
MOVE_MOUNT_F_EMPTY_PATH = 0x4
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
MOUNT_ATTR_IDMAP = 0x00100000


class _MountAttr(ctypes.Structure):
    _fields_ = (
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    )


def _errno_error(what: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")


@dataclass(frozen=True, slots=True)
class IdRange:
    """The host ids of one machine: its ids 0..size-1 are host ids base..base+size-1."""

    base: int
    size: int = IDS_PER_MACHINE

    def mapping(self) -> str:
        return f"0 {self.base} {self.size}\n"

    def to_oci(self) -> list[dict[str, int]]:
        return [{"containerID": 0, "hostID": self.base, "size": self.size}]


class IdAllocator:
    """Hands each machine a slot of the range; the slot is kept in the machine's record and adopted at start.

    The first slot tried is derived from the machine id, so daemons sharing a host (tests, a second data
    directory) almost never pick the same ids, and a slot is chosen without scanning.
    """

    def __init__(self, start: int = RANGE_START, count: int = RANGE_COUNT) -> None:
        self.start = start
        self.slots = count // IDS_PER_MACHINE
        self._taken: dict[int, str] = {}

    def adopt(self, machine_id: str, ids: IdRange) -> None:
        self._taken[(ids.base - self.start) // IDS_PER_MACHINE] = machine_id

    def allocate(self, machine_id: str) -> IdRange:
        first = int.from_bytes(hashlib.sha256(machine_id.encode()).digest()[:8], "big") % self.slots
        for step in range(self.slots):
            slot = (first + step) % self.slots
            if self._taken.get(slot, machine_id) == machine_id:
                self._taken[slot] = machine_id
                return IdRange(self.start + slot * IDS_PER_MACHINE)
        raise CapacityError(f"no user-id range left on this host: {self.slots} machines hold them all")

    def release(self, machine_id: str, ids: IdRange) -> None:
        slot = (ids.base - self.start) // IDS_PER_MACHINE
        if self._taken.get(slot) == machine_id:
            del self._taken[slot]


# -- the namespaces of one run --------------------------------------------------------------------------------

_STACK_SIZE = 16 * 1024
# What the holder runs, on x86_64: close_range(3, ~0, 0), then pause() forever. A clone without CLONE_FILES
# holds copies of all the daemon's descriptors; a holder left paused by a daemon that died mid-start would keep
# the API's and the edge's sockets open (their clients hang instead of seeing the daemon gone) until the next
# daemon ends it. Python cannot run in a clone that shares its memory, so this is machine code.
_HOLDER_X86_64 = bytes.fromhex(
    "bf03000000"  # mov edi, 3
    "beffffffff"  # mov esi, 0xffffffff
    "31d2"  # xor edx, edx
    "b8b4010000"  # mov eax, 436 (close_range)
    "0f05"  # syscall
    "b822000000"  # mov eax, 34 (pause)
    "0f05"  # syscall
    "ebf7"  # jmp back to the pause
)
# A pool slot's holder first asks the kernel to SIGKILL it when the daemon dies (prctl(PR_SET_PDEATHSIG)), then
# exits if the daemon died before that (its parent is no longer the pid the daemon wrote after the code): a
# daemon killed between the clone and the holder's record cannot leave a holder no record names.
_DIE_WITH_PARENT_X86_64 = bytes.fromhex(
    "bf01000000"  # mov edi, 1 (PR_SET_PDEATHSIG)
    "be09000000"  # mov esi, 9 (SIGKILL)
    "b89d000000"  # mov eax, 157 (prctl)
    "0f05"  # syscall
    "b86e000000"  # mov eax, 110 (getppid)
    "0f05"  # syscall
    "3b0528000000"  # cmp eax, [rip + 40]: the daemon's pid, below
    "751c"  # jne to the exit, 28 bytes on
)
_EXIT_X86_64 = bytes.fromhex(
    "31ff"  # xor edi, edi
    "b83c000000"  # mov eax, 60 (exit)
    "0f05"  # syscall
    "90"  # nop: the daemon's pid follows, at offset 70
)
_PARENT_OFFSET = len(_DIE_WITH_PARENT_X86_64) + len(_HOLDER_X86_64) + len(_EXIT_X86_64)


@dataclass(frozen=True, slots=True)
class _HolderCode:
    plain: int  # entry of a machine's holder
    dies_with_parent: int  # entry of a pool slot's holder; 0 where there is no such code (not x86_64)
    page: mmap.mmap | None = None  # what keeps the code mapped

    def set_parent(self, pid: int) -> None:
        if self.page is not None:
            self.page[_PARENT_OFFSET : _PARENT_OFFSET + 4] = pid.to_bytes(4, "little")


def _holder_entry() -> _HolderCode:
    """The holders' entry points, and what keeps their memory mapped: the code above where the CPU runs it,
    else libc's pause() (the descriptors then stay open in a stale holder, and none dies with the daemon)."""
    if platform.machine() != "x86_64":
        return _HolderCode(ctypes.cast(_libc.pause, ctypes.c_void_p).value or 0, 0)
    code = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    code.write(_DIE_WITH_PARENT_X86_64 + _HOLDER_X86_64 + _EXIT_X86_64)
    start = ctypes.addressof(ctypes.c_char.from_buffer(code))
    return _HolderCode(start + len(_DIE_WITH_PARENT_X86_64), start, code)


_holder = _holder_entry()


@dataclass(slots=True)
class Namespaces:
    """A user namespace with a machine's mapping, and a network namespace it owns, held by a paused process.

    The holder is a clone of the daemon that shares its memory, closes its copies of the daemon's descriptors
    and pauses on a stack of its own: it costs about 0.2 ms where a fork of the daemon costs tens. runc joins
    both namespaces by path;
    once the container runs, its processes keep them alive and the holder is killed.
    """

    pid: int
    userns_fd: int
    stack: ctypes.Array[ctypes.c_char] | None = None  # the holder's, kept until it is dead
    record: Path | None = None  # where the holder's pid is written down while it lives

    @property
    def userns_path(self) -> str:
        return f"/proc/{self.pid}/ns/user"

    @property
    def netns_path(self) -> str:
        return f"/proc/{self.pid}/ns/net"

    def close(self) -> None:
        if self.userns_fd >= 0:
            os.close(self.userns_fd)
            self.userns_fd = -1
        if self.pid > 0:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.pid = 0
        self.stack = None
        if self.record is not None:
            self.record.unlink(missing_ok=True)


def new_namespaces(ids: IdRange | None, record: Path | None = None, *, die_with_daemon: bool = False) -> Namespaces:
    """Make a user namespace mapped to `ids` and a network namespace inside it; without `ids` the user namespace
    stays unmapped (and owns nothing of the host) until `map_ids` maps it.

    The holder blocks every signal but SIGKILL, so a daemon that dies before killing it leaves it paused: its
    pid and start time go to `record` at once, and `kill_stale_holder(record)` ends it by that id later. With
    `die_with_daemon` (where the holder's code allows it) the kernel kills it when the daemon's thread ends.
    """
    entry = _holder.dies_with_parent if die_with_daemon and _holder.dies_with_parent else _holder.plain
    _holder.set_parent(os.getpid())
    stack = ctypes.create_string_buffer(_STACK_SIZE)
    top = ctypes.addressof(stack) + _STACK_SIZE - 64
    # The holder shares the daemon's memory: with every signal blocked it can only ever be SIGKILLed, so no
    # handler of the daemon's ever runs on its stack.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        pid = _libc.clone(entry, top, CLONE_NEWUSER | CLONE_NEWNET | CLONE_VM | signal.SIGCHLD, None)
        if pid <= 0:
            raise _errno_error("clone a user namespace")
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    namespaces = Namespaces(pid, -1, stack, record)
    if die_with_daemon:
        fault_point("runtime.start.pool_holder_cloned")
    try:
        if record is not None:
            _write_holder(record, pid)
        if ids is not None:
            map_ids(namespaces, ids)
    except BaseException:
        namespaces.close()
        raise
    return namespaces


def map_ids(namespaces: Namespaces, ids: IdRange) -> None:
    """Map the holder's user namespace to `ids` (once: the kernel takes a map only once)."""
    for kind in ("uid_map", "gid_map"):
        with open(f"/proc/{namespaces.pid}/{kind}", "w") as f:
            f.write(ids.mapping())
    namespaces.userns_fd = os.open(namespaces.userns_path, os.O_RDONLY | os.O_CLOEXEC)


def _write_holder(record: Path, pid: int) -> None:
    tmp = record.with_name(record.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"{pid} {start_time(pid)}")
    os.replace(tmp, record)


def start_time(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[19]


def recorded_holder_lives(record: Path) -> bool:
    """Whether the holder `record` names is still that process."""
    try:
        pid_text, start = record.read_text().split()
        return holder_lives(int(pid_text), start)
    except (OSError, ValueError):
        return False


def holder_lives(pid: int, started: str) -> bool:
    """Whether `pid` is still the holder that started at `started`, and not dead (a zombie its new parent has
    not reaped yet, once the daemon that made it died)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[19] == started and fields[0] not in ("Z", "X")


def kill_stale_holder(record: Path) -> None:
    """SIGKILL the holder `record` names if it is still that process (same start time), and forget it."""
    try:
        pid_text, start = record.read_text().split()
        pid = int(pid_text)
        if start_time(pid) == start:
            os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)  # ours only if this very process made it; a SIGKILLed one exits at once
    except (OSError, ValueError):
        pass  # no record, or its process is gone
    record.unlink(missing_ok=True)


@contextlib.contextmanager
def idmapped_tree(path: Path | str, userns_fd: int) -> Iterator[str]:
    """A detached, recursive clone of the mount tree at `path` shown through the user namespace's mapping.

    Yields a path to it (`/proc/self/fd/N`) that overlayfs and bind mounts accept; the clone lives while
    something mounted from it does, and the daemon's own reference is dropped on exit.
    """
    fd = _libc.syscall(SYS_OPEN_TREE, AT_FDCWD, os.fsencode(path), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE)
    if fd < 0:
        raise _errno_error(f"clone the mount tree of {path}")
    try:
        attr = _MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
        flags = AT_EMPTY_PATH | AT_RECURSIVE
        if _libc.syscall(SYS_MOUNT_SETATTR, fd, b"", flags, ctypes.byref(attr), ctypes.sizeof(attr)) != 0:
            raise _errno_error(f"idmap {path}")
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


# -- the range aerodrome owns ----------------------------------------------------------------------------------


def claim_subordinate_ids(start: int = RANGE_START, count: int = RANGE_COUNT, etc: Path = Path("/etc")) -> None:
    """Record the range in /etc/subuid and /etc/subgid unless it is there; refuse one that overlaps another's."""
    for name in ("subuid", "subgid"):
        table = etc / name
        try:
            text = table.read_text()
        except FileNotFoundError:
            text = ""
        entry = f"{SUBID_OWNER}:{start}:{count}"
        if entry in text.splitlines():
            continue
        for line in text.splitlines():
            owner, _, rest = line.partition(":")
            first, _, size = rest.partition(":")
            if first.isdigit() and size.isdigit() and int(first) < start + count and start < int(first) + int(size):
                raise OSError(f"{table}: the range {first}:{size} of {owner!r} overlaps aerodrome's {start}:{count}")
        with open(table, "a") as f:
            f.write(("" if not text or text.endswith("\n") else "\n") + entry + "\n")


def attach_idmapped(path: Path | str, userns_fd: int, target: Path) -> None:
    """Mount an idmapped clone of the tree at `path` on `target` (an empty directory).

    For a bind source runc must reach by path from inside the machine's user namespace, where the daemon's
    `/proc/self/fd` is out of bounds; the caller detaches it once the machine holds its own copy.
    """
    with idmapped_tree(path, userns_fd) as tree:
        fd = int(tree.rsplit("/", 1)[1])
        if _libc.syscall(SYS_MOVE_MOUNT, fd, b"", AT_FDCWD, os.fsencode(target), MOVE_MOUNT_F_EMPTY_PATH) != 0:
            raise _errno_error(f"mount {path} idmapped on {target}")


def check_support(path: Path) -> None:
    """OSError naming what is missing unless this kernel gives user namespaces and idmapped mounts of `path`'s
    filesystem (the nearest existing directory up from it)."""
    existing = next(p for p in (path, *path.parents) if p.exists())
    try:
        namespaces = new_namespaces(IdRange(RANGE_START))
    except OSError as exc:
        raise OSError(f"this kernel cannot give machines user namespaces: {exc.strerror}") from None
    try:
        with idmapped_tree(existing, namespaces.userns_fd):
            pass
    except OSError as exc:
        raise OSError(
            f"idmapped mounts of {existing} are not possible here (Linux 5.12+ and a filesystem that allows them, "
            f"such as ext4, xfs or btrfs): {exc.strerror}"
        ) from None
    finally:
        namespaces.close()
