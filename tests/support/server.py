"""A real `aerodrome serve` in a subprocess, on free loopback ports, with its own data directory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from aerodrome.cli.daemon import release_pool, unrouted_pool
from aerodrome.core import SHARED_NAMESPACES, namespace_of
from aerodrome.runtime import load_operator_credentials
from aerodrome.runtime.runc.leftovers import host_leftovers
from tests.support.images import build_busybox_image
from tests.support.postgres import query, serve_database
from tests.support.registry import free_loopback_port

START_TIMEOUT = 30.0


@dataclass
class Server:
    data_dir: Path
    api_port: int = field(default_factory=free_loopback_port)
    registry_port: int = field(default_factory=free_loopback_port)
    edge_http_port: int = field(default_factory=free_loopback_port)
    edge_https_port: int = field(default_factory=free_loopback_port)
    # a pool of its own, so that servers running side by side (parallel test runs) never share an address
    machine_pool: str = field(default_factory=unrouted_pool)
    extra_args: tuple[str, ...] = ()
    # PostgreSQL's URL when the tests run on it (AERODROME_TEST_DATABASE=postgresql), else the data dir's SQLite
    database: str | None = field(default_factory=serve_database)
    process: subprocess.Popen[bytes] | None = None
    token: str = ""

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def registry(self) -> str:
        return f"127.0.0.1:{self.registry_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / "serve.log"

    def start(self) -> None:
        argv = [
            sys.executable,
            "-m",
            "aerodrome",
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--api",
            f"127.0.0.1:{self.api_port}",
            "--registry",
            self.registry,
            "--no-rate-limits",
            "--volume-unit-mb",
            "16",
            "--edge-http",
            f"127.0.0.1:{self.edge_http_port}",
            "--edge-https",
            f"127.0.0.1:{self.edge_https_port}",
            "--machine-ipv4-pool",
            self.machine_pool,
            "--no-egress",
            "--no-dns",  # one resolver per host answers at fdaa::3: the tests that use it ask for it (--dns)
            *(("--database", self.database) if self.database else ()),
            *self.extra_args,
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self._wait_ready()
        if not self.token:
            self.token = self.cli("tokens", "create").strip()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"aerodrome serve exited early:\n{self.log_path.read_text()[-4000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.api_url}/health", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"aerodrome serve did not answer in time:\n{self.log_path.read_text()[-4000:]}")

    def cli(self, *args: str) -> str:
        argv = [sys.executable, "-m", "aerodrome", *args, "--data-dir", str(self.data_dir)]
        return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60).stdout

    def client(self, token: str | None = None) -> httpx.Client:
        auth = token if token is not None else self.token
        return httpx.Client(base_url=self.api_url, headers={"Authorization": f"Bearer {auth}"}, timeout=90)

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

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash would: machines keep running, nothing is cleaned up."""
        self.stop(signal.SIGKILL)

    def destroy_everything(self, timeout: float = 300) -> None:
        """Delete every app of every organisation (with its machines and volumes) through the API, and wait until
        they are gone, so the host is left clean."""
        for slug in self.org_slugs():
            token = self.token if slug == "personal" else self.cli("tokens", "create", "--org", slug).strip()
            with self.client(token) as client:
                for app in client.get("/v1/apps", params={"org_slug": slug}).json().get("apps", []):
                    client.delete(f"/v1/apps/{app['name']}")
                deadline = time.monotonic() + timeout
                while client.get("/v1/apps", params={"org_slug": slug}).json().get("apps"):
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"apps of {slug} were still being deleted")
                    time.sleep(0.1)

    def org_slugs(self) -> list[str]:
        return [row[0] for row in self.query("SELECT slug FROM organizations ORDER BY slug")]

    def machine_ids(self) -> list[str]:
        """Every machine the database has known, destroyed ones included (their traces must be gone too)."""
        return [row[0] for row in self.query("SELECT id FROM machines")]

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows read straight from the server's database (SQLite file or PostgreSQL), behind the API's back."""
        if self.database is not None:
            return query(self.database, sql)
        database = self.data_dir / "aerodrome.db"
        if not database.exists():
            return []
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)) as db:
            return db.execute(sql).fetchall()

    def leftovers(self, machine_ids: list[str]) -> list[str]:
        """What of this server's machines, data directory and address pool is still on the host."""
        runtime = self.data_dir / "runtime"
        return asyncio.run(host_leftovers(self.data_dir, runtime, machine_ids, pool4=self.machine_pool))


def shared_name(name: str) -> str:
    return name if namespace_of(name) in SHARED_NAMESPACES else f"library/{name}"


@contextlib.contextmanager
def running_server(*extra_args: str, machine_pool: str | None = None, database: str | None = None) -> Iterator[Server]:
    if os.geteuid() != 0:
        import pytest

        pytest.skip("aerodrome serve needs root")
    workdir = Path(tempfile.mkdtemp(prefix="aerodrome-serve-"))
    server = Server(workdir / "data", extra_args=extra_args)
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


def take_down(server: Server, workdir: Path) -> None:
    """Destroy everything the test left, in every organisation, stop the daemon, then fail unless the host is as
    it was. A daemon the test killed is started again on its data directory first: it adopts what the dead one
    left, and destroys it. Nothing is removed while mounted: a leak is left in place, to be seen."""
    if server.process is not None and server.process.poll() is not None:
        server.start()
    machine_ids: list[str] = []
    try:
        if server.process is not None:
            server.destroy_everything()
            machine_ids = server.machine_ids()
    finally:
        server.stop()
    found = server.leftovers(machine_ids)
    release_pool(server.machine_pool)
    if found:
        raise AssertionError("the test left on the host:\n  " + "\n  ".join(found))
    shutil.rmtree(workdir)
