"""A daemon SIGKILLed with its network slot pool full, or while it makes a slot, leaves nothing the next daemon
on the data directory does not take back: that one starts (its host check sees the slots as aerodrome's own),
machines start and answer on their addresses, and after its shutdown no holder, netns, veth or route is left."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import httpx

from aerodrome.runtime.runc.netpool import pool_leftovers
from tests.api.helpers import create_machine, http_inside, wait_for
from tests.support.server import Server, running_server


def _pool_dir(server: Server) -> Path:
    return server.data_dir / "runtime" / "netpool"


def _wait_full(server: Server, size: int = 2) -> list[str]:
    """The pool's slots once `size` of them are ready (a refill runs after the start that took one)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        slots = [found for found in pool_leftovers(_pool_dir(server)) if found.startswith("netns ")]
        if len(slots) >= size:
            return slots
        time.sleep(0.05)
    raise AssertionError(f"the pool did not fill: {pool_leftovers(_pool_dir(server))}")


def _start_one(server: Server, app: str) -> str:
    with server.client() as api:
        assert api.post("/v1/apps", json={"app_name": app, "org_slug": "personal"}).status_code == 201
        machine = create_machine(api, app, {"image": server.push_image("busybox")})["id"]
        wait_for(api, app, machine, "started")
    return str(machine)


def test_a_daemon_killed_with_a_full_pool_restarts_and_its_slots_are_taken_back() -> None:
    with running_server() as server:
        running = _start_one(server, "pool-crash")
        before = _wait_full(server)
        server.kill()
        server.start()  # the host check passes: the dead daemon's slots were removed before it ran
        assert pool_leftovers(_pool_dir(server)) == []
        with server.client() as api:
            assert "hello" in http_inside(api, "pool-crash", running)
            second = create_machine(api, "pool-crash", {"image": server.push_image("busybox")})["id"]
            wait_for(api, "pool-crash", second, "started")
            assert "hello" in http_inside(api, "pool-crash", second)
        after = _wait_full(server)  # the new daemon fills its pool again, as many slots as before: bounded
        assert len(after) == len(before) == 2, (before, after)
        server.kill()  # and again with the new slots: the teardown's daemon removes them, then checks the host


def _processes_of(server: Server) -> list[str]:
    """Processes still showing the daemon's command line but that daemon's: a holder shares its daemon's memory,
    its command line included, so one left by a dead daemon shows up here even when no record names it."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == (server.process.pid if server.process else -1):
            continue
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if str(server.data_dir) in cmdline and " serve " in cmdline and state not in ("Z", "X"):
                found.append(f"{entry} {cmdline}")
    return found


def test_a_daemon_killed_as_it_clones_a_slots_holder_leaves_no_holder_behind() -> None:
    with running_server() as server:
        _start_one(server, "pool-cut")
        server.stop()
        server.start(fault="runtime.start.pool_holder_cloned")  # dies in the first refill, before the record
        with server.client() as api, contextlib.suppress(httpx.HTTPError):
            create_machine(api, "pool-cut", {"image": server.push_image("busybox")})
        assert server.wait_killed() is not None
        assert _processes_of(server) == []  # the kernel ended the holder with its daemon
        server.start()
        assert pool_leftovers(_pool_dir(server)) == []
        with server.client() as api:
            third = create_machine(api, "pool-cut", {"image": server.push_image("busybox")})["id"]
            wait_for(api, "pool-cut", third, "started")
        _wait_full(server)
