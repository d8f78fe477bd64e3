"""Address ranges for daemons that run side by side on one host (tests, in parallel or not, `doctor`, `bench`).

Each daemon reserves a machine pool, a `172.X.0.0/16`, with a lock file; its dedicated address ranges are
derived from the same X, so whatever holds the pool's lock holds them too. A pytest-xdist worker looks first in
its own share of the pools (`PYTEST_XDIST_WORKER` gwN of `PYTEST_XDIST_WORKER_COUNT`), so workers do not
contend for the same lock; the locks, not the shares, are what keeps them apart.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path

# 172.16-25/16 and 172.31/16 are the ranges tests' servers use; 172.26-29 the runtime tests', 172.30 the default
TEST_POOL_OCTETS = (*range(16, 26), 31)


POOL_LOCKS = Path("/run/aerodrome-test-pools")
_reserved: dict[str, int] = {}  # pool → the descriptor holding its lock


def unrouted_pool(octets: tuple[int, ...] = TEST_POOL_OCTETS) -> str:
    """A `172.X.0.0/16` of `octets` reserved for this caller until `release_pool`: no other daemon started this way
    (tests, `doctor`, side by side in other processes) gets it meanwhile, since each holds a lock file per pool.
    A pool any route on the host falls in is never handed out: what a dead run left there (a leak its teardown
    reported and left in place to be seen) would be taken for the new daemon's own."""
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    free = [octet for octet in worker_first(octets) if f"172.{octet}." not in routes]
    for octet in free:
        pool = f"172.{octet}.0.0/16"
        if _reserve(pool):
            return pool
    held = ", ".join(f"172.{octet}.0.0/16" for octet in octets if octet not in free)
    raise RuntimeError(f"no test address pool is free: routes on this host fall in {held or 'none'}, the rest are held")


def _reserve(pool: str) -> bool:
    if pool in _reserved:
        return False
    try:
        POOL_LOCKS.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(POOL_LOCKS / pool.replace("/", "_"), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except OSError:
        return True  # no lock directory (not root): the route check alone keeps runs apart
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    _reserved[pool] = fd
    return True


def release_pool(pool: str) -> None:
    fd = _reserved.pop(pool, None)
    if fd is not None:
        os.close(fd)


def worker_first(octets: tuple[int, ...]) -> tuple[int, ...]:
    """`octets`, this test worker's share (every Nth, from its index) first."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "") or 1)
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    own = octets[index % count :: count]
    return own + tuple(octet for octet in octets if octet not in own)


def dedicated_pools(machine_pool: str) -> tuple[str, str]:
    """The dedicated IPv4 and IPv6 ranges that go with a reserved `172.X.0.0/16`: `127.0.X.0/24`, `fdae:ad:X::/48`
    (apart from serve's defaults, `127.0.1.0/24` and `fdae:ad::/48`)."""
    octet = int(machine_pool.split(".")[1])
    return f"127.0.{octet}.0/24", f"fdae:ad:{octet}::/48"
