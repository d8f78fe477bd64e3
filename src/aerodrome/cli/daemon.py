"""A throw-away `aerodrome serve` (for `doctor`, `bench` and the tests): a subprocess on loopback ports it picks
itself, its own data directory and address pool, and a busybox image of its own in its registry."""

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from aerodrome.cli.listeners import read_ports
from aerodrome.cli.pools import dedicated_pools, release_pool, unrouted_pool
from aerodrome.core import FAULT_ENV

START_TIMEOUT = 60.0
BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static
APPLETS = ("sh", "echo", "cat", "sleep", "httpd", "env", "printenv", "ls", "true", "wget", "seq")
PATH_ENV = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"


def exit_on_sigterm() -> None:
    """Make a SIGTERM (a caller's timeout) end this process through its clean-up, which destroys what its daemon
    made, rather than on the spot with the daemon's machines left on the host."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))


class DaemonGone(RuntimeError):
    """The daemon is not running (any more)."""


@dataclass
class Daemon:
    """One data directory, served by successive `aerodrome serve` processes (a kill, then a restart on it).

    Its listeners take port 0 the first time: the daemon binds what the kernel picks and reports it
    (`ports.json`), so daemons started side by side never race for a port. A restart binds the same ports again,
    as an operator's restart would, so clients made before it still reach it."""

    workdir: Path
    machine_pool: str = field(default_factory=unrouted_pool)  # keeps side-by-side runs apart
    api_port: int = 0
    registry_port: int = 0
    edge_http_port: int = 0
    edge_https_port: int = 0
    volume_unit_mb: int = 16
    # the machines' resolver (fdaa::3) has one daemon per host: a throw-away one leaves it to the host's own serve
    dns: bool = False
    extra_args: tuple[str, ...] = ()
    database: str | None = None  # `serve --database URL`; None: the data directory's SQLite file
    process: subprocess.Popen[bytes] | None = None
    token: str = ""

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "serve.log"

    @property
    def dedicated_pools(self) -> tuple[str, str]:
        """Its dedicated IPv4 and IPv6 ranges, which the edge binds: apart from other daemons', as its pool is."""
        return dedicated_pools(self.machine_pool)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def registry(self) -> str:
        return f"127.0.0.1:{self.registry_port}"

    def start(self, fault: str | None = None) -> None:
        """Start serving; with `fault` (`step[#n]`), the daemon kills itself at that step."""
        env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
        if fault:
            env[FAULT_ENV] = fault
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        self._wait_ready()
        if not self.token:
            self.token = self.cli("tokens", "create").strip()

    def argv(self) -> list[str]:
        argv = [sys.executable, "-m", "aerodrome", "serve", "--data-dir", str(self.data_dir), "--no-rate-limits"]
        argv += ["--api", f"127.0.0.1:{self.api_port}", "--registry", self.registry]
        argv += ["--edge-http", f"127.0.0.1:{self.edge_http_port}", "--edge-https", f"127.0.0.1:{self.edge_https_port}"]
        argv += ["--volume-unit-mb", str(self.volume_unit_mb), "--machine-ipv4-pool", self.machine_pool, "--no-egress"]
        argv += ["--dedicated-ipv4-pool", self.dedicated_pools[0], "--dedicated-ipv6-pool", self.dedicated_pools[1]]
        database = ["--database", self.database] if self.database else []
        return [*argv, *([] if self.dns else ["--no-dns"]), *database, *self.extra_args]

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if not self.alive():
                raise DaemonGone(f"aerodrome serve exited early, while starting:\n{self.log_tail()}")
            if self._take_ports():
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{self.api_url}/health", timeout=1).status_code == 200:
                        return
            time.sleep(0.05)
        raise DaemonGone(f"aerodrome serve did not answer in time:\n{self.log_tail()}")

    def _take_ports(self) -> bool:
        """Learn the ports the daemon reported, once it has."""
        ports = read_ports(self.data_dir, self.pid)
        if ports is None:
            return False
        self.api_port, self.registry_port = _port(ports["api"]), _port(ports["registry"])
        self.edge_http_port, self.edge_https_port = _port(ports["edge_http"]), _port(ports["edge_https"])
        return True

    def cli(self, *args: str) -> str:
        argv = [sys.executable, "-m", "aerodrome", *args, "--data-dir", str(self.data_dir)]
        return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60).stdout

    @property
    def pid(self) -> int:
        assert self.process is not None, "the daemon is not started"
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self, token: str | None = None) -> httpx.Client:
        """An API client with `token`, else the daemon's own."""
        auth = token if token is not None else self.token
        return httpx.Client(base_url=self.api_url, headers={"Authorization": f"Bearer {auth}"}, timeout=90)

    def wait_killed(self, timeout: float = 60.0) -> int | None:
        """The exit status once the process ended within `timeout` (-9 for a SIGKILL), else None."""
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM, as an operator stops it: machines keep running for the next daemon to adopt."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=60)
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
        """Rows read straight from the daemon's SQLite file, behind the API's back."""
        database = self.data_dir / "aerodrome.db"
        if not database.exists():
            return []
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)) as db:
            return db.execute(sql).fetchall()

    def clear(self) -> None:
        """Destroy everything every organisation has, then stop the daemon. One that is not running (killed) is
        started again on its data directory first: it adopts what the dead one left, and destroys it."""
        try:
            if not self.alive():
                self.start()
            self.destroy_everything()
        finally:
            self.stop()

    def remove(self, machine_ids: list[str]) -> list[str]:
        """Give back the address pool and remove the working directory, unless anything of `machine_ids`, the data
        directory or the pool is still on the host: then that is returned, and left in place to be seen (nothing
        is removed while mounted)."""
        found = self.leftovers(machine_ids)
        release_pool(self.machine_pool)
        if not found:
            shutil.rmtree(self.workdir)
        return found

    def leftovers(self, machine_ids: list[str]) -> list[str]:
        """What of `machine_ids`, the data directory and the address pool is still on the host."""
        from aerodrome.runtime import host_leftovers  # the host's own view; imported only when it is needed

        return asyncio.run(
            host_leftovers(self.data_dir, self.data_dir / "runtime", machine_ids, pool4=self.machine_pool)
        )

    def log_tail(self, size: int = 4000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-size:]
        return ""

    def push_image(self, tag: str, marker: str = "") -> str:
        """Build a small busybox image (a distinct digest per `marker`) and push it, as the host's operator, to a
        shared namespace of the daemon's registry (every organisation may pull from it)."""
        from aerodrome.runtime import load_operator_credentials

        reference = f"{self.registry}/library/doctor:{tag}"
        login = f"--dest-creds={load_operator_credentials(self.data_dir / 'registry')}"
        build = Path(tempfile.mkdtemp(prefix="aerodrome-doctor-image-"))
        try:
            layout, bundle = build / "layout", build / "bundle"
            image = f"{layout}:{tag}"
            _tool("umoci", "init", "--layout", str(layout))
            _tool("umoci", "new", "--image", image)
            _tool("umoci", "unpack", "--image", image, str(bundle))
            _populate(bundle / "rootfs", marker or tag)
            _tool("umoci", "repack", "--image", image, str(bundle))
            cmd = [a for item in ("httpd", "-f", "-p", "8080", "-h", "/www") for a in ("--config.cmd", item)]
            _tool("umoci", "config", "--image", image, "--config.env", PATH_ENV, *cmd)
            _tool(
                "skopeo", "copy", "--quiet", "--dest-tls-verify=false", login, f"oci:{image}", f"docker://{reference}"
            )
        finally:
            shutil.rmtree(build, ignore_errors=True)
        return reference


def _populate(rootfs: Path, marker: str) -> None:
    bindir = rootfs / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, bindir / "busybox")
    for applet in APPLETS:
        (bindir / applet).symlink_to("busybox")
    (rootfs / "www").mkdir()
    (rootfs / "www" / "index.html").write_text(f"{marker}\n")
    (rootfs / "etc").mkdir()
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\n")
    (rootfs / "tmp").mkdir(mode=0o1777)
    os.chmod(rootfs / "tmp", 0o1777)


def _tool(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=120)


def _port(address: str) -> int:
    return int(address.rpartition(":")[2])
