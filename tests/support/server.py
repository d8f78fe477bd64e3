"""A real `aerodrome serve` in a subprocess, on loopback ports it picks itself, with its own data directory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aerodrome.cli.daemon import Daemon
from aerodrome.cli.pools import release_pool
from aerodrome.core import SHARED_NAMESPACES, namespace_of
from aerodrome.runtime import load_operator_credentials
from tests.support.images import build_busybox_image
from tests.support.postgres import query, serve_database


@dataclass
class Server(Daemon):
    """`cli.daemon.Daemon` with what tests ask of it: images of their own, a teardown, the host's leftovers."""

    # dns is off (Daemon's default): one resolver per host answers at fdaa::3; the tests that use it ask (--dns).
    # The database: PostgreSQL's URL when the tests run on it (AERODROME_TEST_DATABASE=postgresql), else SQLite's.
    database: str | None = field(default_factory=serve_database)

    @property
    def operator_credentials(self) -> str:
        """The host operator's registry login (`operator:<secret>`), from the data directory."""
        return load_operator_credentials(self.data_dir / "registry")

    def image(self, name: str = "busybox", tag: str = "latest") -> str:
        """The reference `push_image(name, tag)` pushes to: test images live in a shared namespace (`library/`
        unless the name is in one already), so that every organisation's machines can be made from them."""
        return f"{self.registry}/{shared_name(name)}:{tag}"

    def push_image(self, name: str = "busybox", tag: str = "latest", **options: object) -> str:
        """Build a busybox image and push it, as the host operator, to `image(name, tag)`; return that."""
        pushed = build_busybox_image(
            self.registry, shared_name(name), tag, credentials=self.operator_credentials, **options
        )  # type: ignore[arg-type]
        return asyncio.run(pushed)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows read straight from the server's database (SQLite file or PostgreSQL), behind the API's back."""
        if self.database is not None:
            return query(self.database, sql)
        return super().query(sql)


def shared_name(name: str) -> str:
    return name if namespace_of(name) in SHARED_NAMESPACES else f"library/{name}"


@contextlib.contextmanager
def running_server(*extra_args: str, machine_pool: str | None = None, database: str | None = None) -> Iterator[Server]:
    if os.geteuid() != 0:
        import pytest

        pytest.skip("aerodrome serve needs root")
    workdir = Path(tempfile.mkdtemp(prefix="aerodrome-serve-"))
    server = Server(workdir, extra_args=extra_args)
    if database is not None:  # one database shared by several servers (replicas), instead of one of its own
        server.database = database
    if machine_pool is not None:
        release_pool(server.machine_pool)
        server.machine_pool = machine_pool
    try:
        server.start()
        yield server
    finally:
        take_down(server, workdir)


def take_down(server: Server, workdir: Path | None = None) -> None:
    """Destroy everything the test left, in every organisation, stop the daemon, then fail unless the host is as
    it was. A daemon the test killed is started again on its data directory first: it adopts what the dead one
    left, and destroys it. Nothing is removed while mounted: a leak is left in place, to be seen."""
    assert workdir is None or workdir == server.workdir
    try:
        if server.process is not None:
            server.clear()
    finally:
        found = server.remove(server.machine_ids())
    if found:
        raise AssertionError("the test left on the host:\n  " + "\n  ".join(found))
