"""safefs against real plants in a real directory tree: links, FIFOs, device nodes, mounts, oversized files.

Every case runs twice: through openat2, and through the one-component-at-a-time walk kept for kernels without it.
"""

from __future__ import annotations

import ctypes
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from aerodrome.core import GuestFile, InvalidArgumentError
from aerodrome.runtime import safefs
from aerodrome.runtime.runc.guestfs import resolve_user, write_files

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mknod and mount need root")


@pytest.fixture(params=["openat2", "walk"])
def guest(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A guest root, with a host directory and file beside it for its links to point at."""
    if request.param == "walk":
        monkeypatch.setattr(safefs, "_have_openat2", False)
    root, outside = tmp_path / "guest", tmp_path / "host"
    (root / "etc").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret").write_text("the host's own\n")
    (root / "etc/passwd").write_text("root:x:0:0::/:/bin/sh\n")
    (root / "etc/shadow").symlink_to(outside / "secret")
    (root / "linked").symlink_to(outside)
    (root / "inside").symlink_to("/etc")  # a link that stays inside is refused too
    os.mkfifo(root / "fifo")
    return root


def _refused(match: str) -> pytest.RaisesContext[InvalidArgumentError]:
    return pytest.raises(InvalidArgumentError, match=match)


def test_reads_a_regular_file_and_refuses_everything_else(guest: Path) -> None:
    assert safefs.read_file(guest, "/etc/passwd", 100) == b"root:x:0:0::/:/bin/sh\n"
    with _refused("^/etc/shadow in the guest is a symbolic link"):
        safefs.read_file(guest, "/etc/shadow", 100)
    with _refused("^/linked in the guest is a symbolic link.*on the way to /linked/secret"):
        safefs.read_file(guest, "/linked/secret", 100)
    with _refused("^/inside in the guest is a symbolic link"):
        safefs.read_file(guest, "/inside/passwd", 100)
    with _refused("^/fifo in the guest is a FIFO"):
        safefs.read_file(guest, "/fifo", 100)
    with _refused("^/fifo in the guest is a FIFO.*on the way to /fifo/x"):
        safefs.read_file(guest, "/fifo/x", 100)
    with _refused("^/etc in the guest is a directory"):
        safefs.read_file(guest, "/etc", 100)
    with pytest.raises(FileNotFoundError):
        safefs.read_file(guest, "/etc/group", 100)


def test_a_read_is_bounded_not_truncated(guest: Path) -> None:
    (guest / "big").write_bytes(b"x" * 1001)
    with _refused("larger than the 1000 bytes"):
        safefs.read_file(guest, "/big", 1000)
    assert len(safefs.read_file(guest, "/big", 1001)) == 1001


def test_paths_that_climb_are_refused(guest: Path) -> None:
    for path in ("etc/passwd", "/etc/../../host/secret", "/"):
        with _refused("invalid guest path"):
            safefs.read_file(guest, path, 100)


def test_writes_refuse_links_and_fifos_on_the_way_and_at_the_end(guest: Path) -> None:
    for path, culprit in (("/linked/x", "/linked"), ("/etc/shadow", "/etc/shadow"), ("/fifo", "/fifo")):
        with _refused(f"^cannot write file {path}: {culprit} in the machine is"):
            write_files(guest, (GuestFile(path, b"planted"),))
    with _refused("^cannot write file /fifo/x: /fifo in the machine is a FIFO"):
        write_files(guest, (GuestFile("/fifo/x", b"planted"),))
    assert os.listdir(guest.parent / "host") == ["secret"]
    assert (guest.parent / "host/secret").read_text() == "the host's own\n"


def test_writes_make_directories_and_replace_regular_files(guest: Path) -> None:
    write_files(guest, (GuestFile("/a/b/c", b"new", 0o600), GuestFile("/etc/passwd", b"short", 0o640)))
    assert (guest / "a/b/c").read_bytes() == b"new"
    assert stat.S_IMODE((guest / "a/b/c").stat().st_mode) == 0o600
    assert (guest / "etc/passwd").read_bytes() == b"short"
    assert stat.S_IMODE((guest / "etc/passwd").stat().st_mode) == 0o640


def test_the_user_is_looked_up_in_the_image_and_hostile_ids_are_refused(guest: Path) -> None:
    passwd = "root:x:0:0::/:/bin/sh\napp:x:4242:4243::/:/bin/sh\nsup:x:\u00b2:1::/:/bin/sh\nbig:x:4294967295:1::/:/\n"
    (guest / "etc/passwd").write_text(passwd)
    (guest / "etc/group").write_text("staff:x:50:\n")
    assert resolve_user(guest, "app") == (4242, 4243)
    assert resolve_user(guest, "app:staff") == (4242, 50)
    assert resolve_user(guest, "4242") == (4242, 4243)
    assert resolve_user(guest, "7:8") == (7, 8)
    for user in ("sup", "big"):
        with _refused("invalid user id"):
            resolve_user(guest, user)
    with _refused("user 'nobody' not found in the image"):
        resolve_user(guest, "nobody")


@needs_root
def test_a_device_node_is_never_opened(guest: Path) -> None:
    os.mknod(guest / "etc/hosts", 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # /dev/null's numbers
    with _refused("^/etc/hosts in the guest is a character device"):
        safefs.read_file(guest, "/etc/hosts", 100)
    with _refused("^cannot write file /etc/hosts: /etc/hosts in the machine is a character device"):
        write_files(guest, (GuestFile("/etc/hosts", b"planted"),))
    assert stat.S_ISCHR((guest / "etc/hosts").lstat().st_mode)


@pytest.fixture
def mounted(guest: Path) -> Iterator[Path]:
    """A tmpfs mounted inside the guest root, as nothing the daemon made would be."""
    libc = ctypes.CDLL(None, use_errno=True)
    target = guest / "mnt"
    target.mkdir()
    if libc.mount(b"tmpfs", str(target).encode(), b"tmpfs", 0, b"size=1m") != 0:
        pytest.skip(f"cannot mount a tmpfs here: {os.strerror(ctypes.get_errno())}")
    try:
        (target / "file").write_text("on another filesystem\n")
        yield target
    finally:
        libc.umount2(str(target).encode(), 2)


@needs_root
def test_a_mount_inside_the_root_is_not_crossed(mounted: Path, guest: Path) -> None:
    with _refused("^/mnt in the guest is a mount point"):
        safefs.read_file(guest, "/mnt/file", 100)
