"""`aerodrome agent` in a subprocess, for the tests and benchmarks that run several hosts under one serve."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from aerodrome.agent import RemoteAgent
from aerodrome.cli.daemon import unrouted_pool
from aerodrome.core import AerodromeError, HostMachine
from aerodrome.runtime.runc.leftovers import host_leftovers
from tests.support.registry import free_loopback_port

START_TIMEOUT = 30.0


@dataclass
class HostProcess:
    """`aerodrome agent --name NAME` in a subprocess, on a data directory and address pool of its own."""

    name: str
    data_dir: Path
    registry: str
    registry_keys: Path  # serve's DATA/registry: its key signs the agent's pulls from the embedded registry
    machine_pool: str = field(default_factory=unrouted_pool)
    port: int = field(default_factory=free_loopback_port)
    process: subprocess.Popen[bytes] | None = None
    argv_prefix: tuple[str, ...] = ()  # e.g. `nsenter --net=…`: the agent in a host's netns (tests/support/hosts.py)
    extra_args: tuple[str, ...] = ()
    # `--database URL`: the host registers itself and answers over mutual TLS (with `tls`, a control plane's)
    database: str | None = None
    heartbeat_interval: float = 2.0
    tls: ssl.SSLContext | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.database else 'http'}://127.0.0.1:{self.port}"

    @property
    def token_file(self) -> Path:
        return self.data_dir / "agent.token"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.name}.log"

    def start(self, *, wait: bool = True) -> None:
        """Start the agent; with `wait`, until it answers (a registering one: once a replica signed it)."""
        argv = [*self.argv_prefix, sys.executable, "-m", "aerodrome", "agent", "--data-dir", str(self.data_dir)]
        argv += ["--name", self.name, "--listen", f"127.0.0.1:{self.port}", "--registry", self.registry]
        argv += ["--registry-keys", str(self.registry_keys), "--machine-ipv4-pool", self.machine_pool, "--no-egress"]
        if self.database:
            argv += ["--database", self.database, "--heartbeat-interval", str(self.heartbeat_interval)]
        argv += self.extra_args
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"agent {self.name} exited early:\n{self.log_path.read_text()[-4000:]}")
            with contextlib.suppress(AerodromeError, OSError):
                credential = self.tls is not None if self.database else self.token_file.exists()
                if credential and asyncio.run(self._call(lambda agent: agent.info())):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"agent {self.name} did not answer in time:\n{self.log_path.read_text()[-4000:]}")

    def status(self, machine_id: str) -> HostMachine:
        return asyncio.run(self._call(lambda agent: agent.status(machine_id)))  # type: ignore[no-any-return]

    async def _call(self, call: object) -> object:
        if self.database:
            agent = RemoteAgent(self.url, tls=self.tls, server_name=self.name, connect_attempts=1)
        else:
            agent = RemoteAgent(self.url, self.token_file.read_text().strip(), connect_attempts=1)
        try:
            return await call(agent)  # type: ignore[operator]
        finally:
            await agent.close()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def leftovers(self, machine_ids: list[str]) -> list[str]:
        runtime = self.data_dir / "runtime"
        return asyncio.run(host_leftovers(self.data_dir, runtime, machine_ids, pool4=self.machine_pool))
