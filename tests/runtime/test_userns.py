"""The user-id ranges of machines, the range aerodrome records, and the kernel features they need."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from aerodrome.core import CapacityError
from aerodrome.runtime.runc.userns import (
    IDS_PER_MACHINE,
    RANGE_START,
    IdAllocator,
    IdRange,
    check_support,
    claim_subordinate_ids,
    idmapped_tree,
    kill_stale_holder,
    new_namespaces,
)
from tests.runtime.runc_fixtures import needs_root


def test_a_machine_gets_the_same_slot_from_its_id_and_another_when_taken() -> None:
    first, second = IdAllocator(), IdAllocator()
    ids = first.allocate("m1")
    assert ids == second.allocate("m1")  # derived from the id: two daemons agree without talking
    assert ids.base % IDS_PER_MACHINE == 0 and ids.base >= RANGE_START
    assert first.allocate("m1") == ids  # asking again keeps it
    small = IdAllocator(count=2 * IDS_PER_MACHINE)
    a, b = small.allocate("a"), small.allocate("b")
    assert a != b
    with pytest.raises(CapacityError, match="no user-id range left"):
        small.allocate("c")
    small.release("a", a)
    assert small.allocate("c") == a


def test_an_adopted_slot_is_not_handed_out_again() -> None:
    allocator = IdAllocator(count=2 * IDS_PER_MACHINE)
    allocator.adopt("old", IdRange(RANGE_START))
    allocator.adopt("older", IdRange(RANGE_START + IDS_PER_MACHINE))
    with pytest.raises(CapacityError):
        allocator.allocate("new")


def test_the_range_is_recorded_once_and_an_overlap_is_refused(tmp_path: Path) -> None:
    (tmp_path / "subuid").write_text("alice:100000:65536")  # no final newline
    claim_subordinate_ids(etc=tmp_path)
    claim_subordinate_ids(etc=tmp_path)
    assert (tmp_path / "subuid").read_text() == "alice:100000:65536\naerodrome:2147483648:1073741824\n"
    assert (tmp_path / "subgid").read_text() == "aerodrome:2147483648:1073741824\n"
    (tmp_path / "subuid").write_text("bob:2147500000:65536\n")
    with pytest.raises(OSError, match="'bob' overlaps aerodrome's"):
        claim_subordinate_ids(etc=tmp_path)
    assert (tmp_path / "subuid").read_text() == "bob:2147500000:65536\n"


@needs_root
def test_an_idmapped_tree_shows_files_in_the_machine_range(tmp_path: Path) -> None:
    (tmp_path / "owned").write_text("x")
    os.chown(tmp_path / "owned", 1000, 1000)
    namespaces = new_namespaces(IdRange(RANGE_START))
    try:
        assert Path(f"/proc/{namespaces.pid}/uid_map").read_text().split() == ["0", str(RANGE_START), "65536"]
        with idmapped_tree(tmp_path, namespaces.userns_fd) as tree:
            assert os.stat(f"{tree}/owned").st_uid == RANGE_START + 1000
        assert os.stat(tmp_path / "owned").st_uid == 1000  # on disk, unchanged
    finally:
        namespaces.close()
    assert namespaces.pid == 0


@needs_root
def test_a_filesystem_without_idmapped_mounts_is_named() -> None:
    with pytest.raises(OSError, match="idmapped mounts of /proc/self are not possible here"):
        check_support(Path("/proc/self"))
    check_support(Path(__file__).parent)


@needs_root
def test_a_recorded_holder_is_ended_by_its_pid_and_start_time(tmp_path: Path) -> None:
    record = tmp_path / "holder"
    namespaces = new_namespaces(IdRange(RANGE_START), record)
    pid = namespaces.pid
    assert record.read_text().split()[0] == str(pid)
    kill_stale_holder(record)  # as the next daemon does for a start its predecessor did not finish
    assert not record.exists() and not Path(f"/proc/{pid}").exists()
    record.write_text(f"{os.getpid()} 0")  # a pid that now belongs to another process is left alone
    kill_stale_holder(record)
    assert not record.exists()


@needs_root
def test_a_holder_keeps_none_of_the_daemons_descriptors() -> None:
    """A holder left by a daemon that died mid-start must not keep its listening sockets open."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        namespaces = new_namespaces(IdRange(RANGE_START))
        try:
            held = Path(f"/proc/{namespaces.pid}/fd")
            deadline = time.monotonic() + 10  # the close happens in the holder, after clone returns here
            while {int(fd) for fd in os.listdir(held)} - {0, 1, 2} and time.monotonic() < deadline:
                time.sleep(0.001)
            assert {int(fd) for fd in os.listdir(held)} <= {0, 1, 2}
            assert Path(f"/proc/self/fd/{listener.fileno()}").exists()  # the daemon's own copy is untouched
            assert Path(f"/proc/{namespaces.pid}/stat").read_text().split(") ", 1)[1][0] == "S"  # paused
        finally:
            namespaces.close()
