"""The runtime conformance suite and runc-specific checks, against real runc, netns, cgroups and overlayfs."""

from __future__ import annotations

from pathlib import Path

import pytest

from aerodrome.core import GuestFile, InvalidArgumentError, OutputCursor
from aerodrome.runtime.runc.guestfs import write_files
from aerodrome.runtime.runc.output import read_output
from tests.runtime.conformance import Harness, RuntimeConformance, eventually
from tests.runtime.runc_fixtures import harness, image_store_root, needs_root

__all__ = ["harness", "image_store_root"]

pytestmark = [pytest.mark.root, needs_root]


class TestRuncConformance(RuntimeConformance):
    pass


def test_files_never_follow_symlinks_out_of_the_guest(tmp_path: Path) -> None:
    guest, outside = tmp_path / "guest", tmp_path / "outside"
    guest.mkdir()
    outside.mkdir()
    (guest / "etc").symlink_to(outside)
    with pytest.raises(InvalidArgumentError):
        write_files(guest, (GuestFile("/etc/passwd", b"x"),))
    (guest / "link").symlink_to(outside / "file")
    with pytest.raises(InvalidArgumentError):
        write_files(guest, (GuestFile("/link", b"x"),))
    assert list(outside.iterdir()) == []
    write_files(guest, (GuestFile("/a/b/c.txt", b"ok", 0o640),))
    assert (guest / "a/b/c.txt").read_bytes() == b"ok"


def test_output_is_read_from_a_cursor_and_let_go_of(tmp_path: Path) -> None:
    log = tmp_path / "machine.log"
    log.write_bytes(b"x" * 100_000 + b"tail")
    chunk = read_output(log, OutputCursor(), 10_000, keep=50_000)
    assert chunk.skipped == 100_004 - 50_000 and len(chunk.data) == 10_000
    again = read_output(log, chunk.cursor, 100_000, keep=50_000)
    assert again.data.endswith(b"tail") and again.skipped == 0
    assert read_output(log, again.cursor, 100, keep=50_000).data == b""
    assert log.stat().st_blocks * 512 < 100_000  # what was read is punched out, the size stays
    assert log.stat().st_size == 100_004


async def test_recover_cleans_a_create_that_never_finished(harness: Harness, tmp_path: Path) -> None:
    spec = harness.spec()
    await harness.runtime.create(spec)
    record = tmp_path / "runtime" / "machines" / spec.machine_id / "machine.json"
    record.unlink()  # as if the daemon died before create wrote its last record
    restarted = await harness.reopen()
    assert spec.machine_id not in await restarted.recover()
    assert await harness.leftovers(spec.machine_id) == []


async def test_machines_run_confined_and_log_to_a_file(harness: Harness, tmp_path: Path) -> None:
    spec = harness.spec(("sh", "-c", "echo to-stdout; echo to-stderr >&2; exec sleep 1000"))
    await harness.runtime.create(spec)
    await harness.runtime.start(spec.machine_id)
    status = await harness.runtime.exec(spec.machine_id, ["cat", "/proc/self/status"], None, 10)
    fields = dict(line.split(":\t", 1) for line in status.stdout.decode().splitlines() if ":\t" in line)
    assert fields["Seccomp"].strip() == "2"
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["CapEff"].strip() == "00000000a00405fb"  # Docker's default set without NET_RAW and MKNOD
    log = tmp_path / "runtime" / "machines" / spec.machine_id / "machine.log"

    async def logged() -> bool:
        return _read_bytes(log) == b"to-stdout\nto-stderr\n"

    await eventually(logged, "the machine's output in its log")


def _read_bytes(path: Path) -> bytes:
    return path.read_bytes()
