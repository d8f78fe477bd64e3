"""A real PostgreSQL (Debian's) in a temporary directory, run as the `postgres` system user for the tests.

initdb refuses to run as root, so it and `pg_ctl` run through `runuser -u postgres --`; the server listens on a
unix socket in its directory and on a free loopback port, with password authentication only. It is stopped by
the postmaster's pid (read from its pid file) and its directory removed when the tests are done.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.support.registry import free_loopback_port

SYSTEM_USER = "postgres"
#: `AERODROME_TEST_DATABASE=postgresql` runs every `aerodrome serve` of the tests on a database of this session's
#: PostgreSQL (tests/support/server.py asks `serve_database()`), instead of its SQLite file.
TEST_DATABASE_ENV = "AERODROME_TEST_DATABASE"
START_TIMEOUT = 60.0


def postgres_bindir() -> Path | None:
    """The newest of Debian's PostgreSQL installations (/usr/lib/postgresql/N/bin), or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


def missing_postgres() -> str | None:
    """Why this host cannot start a PostgreSQL for the tests, or None."""
    if os.geteuid() != 0:
        return "starting PostgreSQL as its system user needs root (runuser)"
    if postgres_bindir() is None or shutil.which("runuser") is None:
        return "PostgreSQL is not installed (run scripts/install-test-deps.sh)"
    return None


@dataclass
class PostgresServer:
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="aerodrome-pg-")))
    port: int = field(default_factory=free_loopback_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    #: False for the tests' throwaway clusters: a restart of the server still loses nothing (the page cache
    #: outlives it), only a crash of the host would; benchmarks keep PostgreSQL's durable default.
    fsync: bool = True
    pid: int | None = None

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/{database}"

    def _as_postgres(self, *argv: str) -> None:
        bindir = postgres_bindir()
        assert bindir is not None
        command = ["runuser", "-u", SYSTEM_USER, "--", str(bindir / argv[0]), *argv[1:]]
        subprocess.run(command, check=True, capture_output=True, timeout=START_TIMEOUT, cwd=self.root)

    def init(self) -> None:
        shutil.chown(self.root, SYSTEM_USER, SYSTEM_USER)
        password_file = self.root / "password"
        password_file.write_text(self.password + "\n")
        shutil.chown(password_file, SYSTEM_USER, SYSTEM_USER)
        self._as_postgres(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=scram-sha-256", f"--pwfile={password_file}",
            "--encoding=UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        password_file.unlink()

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=300"
        if not self.fsync:
            options += " -c fsync=off -c full_page_writes=off"
        self._as_postgres("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])

    def stop(self, sig: int = signal.SIGINT) -> None:
        """Fast shutdown (SIGINT) by default: open connections are cut, as when an operator restarts it."""
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)
        deadline = time.monotonic() + START_TIMEOUT
        while _alive(self.pid):
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
            time.sleep(0.05)
        self.pid = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def create_database(self) -> str:
        """A new, empty database; its URL."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        asyncio.run(self.execute(f'CREATE DATABASE "{name}"'))
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Dropped when its test is done: the files of a database are otherwise written again at shutdown."""
        name = url.rsplit("/", 1)[1]
        asyncio.run(self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    async def execute(self, sql: str, database: str = "postgres") -> None:
        conn = await asyncpg.connect(self.url(database))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    """The rows of `sql`, read from outside any event loop (the tests' synchronous helpers)."""

    async def fetch() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(url)
        try:
            return [tuple(row) for row in await conn.fetch(sql)]
        finally:
            await conn.close()

    return asyncio.run(fetch())


def _alive(pid: int) -> bool:
    """Whether `pid` still runs: the postmaster is not our child, so no wait(); /proc tells a zombie apart."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@contextlib.contextmanager
def running_postgres(*, fsync: bool = True) -> Iterator[PostgresServer]:
    server = PostgresServer(fsync=fsync)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL for the session; each test takes a database of its own (`create_database`)."""
    problem = missing_postgres()
    if problem is not None:
        pytest.skip(problem)
    with running_postgres(fsync=False) as server:
        yield server


_for_servers: list[PostgresServer] = []


def serve_database() -> str | None:
    """A new database for one `aerodrome serve` of the tests, when they run on PostgreSQL; else None."""
    return _for_servers[0].create_database() if _for_servers else None


@pytest.fixture(scope="session", autouse=True)
def postgres_for_servers() -> Iterator[None]:
    wanted = os.environ.get(TEST_DATABASE_ENV, "sqlite")
    if wanted == "sqlite":
        yield
        return
    if wanted != "postgresql":
        raise pytest.UsageError(f"{TEST_DATABASE_ENV} is sqlite or postgresql, not {wanted!r}")
    problem = missing_postgres()
    if problem is not None:
        raise pytest.UsageError(f"{TEST_DATABASE_ENV}=postgresql: {problem}")
    with running_postgres(fsync=False) as server:
        _for_servers.append(server)
        try:
            yield
        finally:
            _for_servers.clear()
