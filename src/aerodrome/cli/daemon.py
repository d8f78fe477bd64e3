"""A throw-away `aerodrome serve` for `aerodrome doctor`: a subprocess on free loopback ports, its own data directory,
and a busybox image of its own in its registry."""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from aerodrome.core import FAULT_ENV

START_TIMEOUT = 60.0
BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static
APPLETS = ("sh", "echo", "cat", "sleep", "httpd", "env", "printenv", "ls", "true", "wget", "seq")
PATH_ENV = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"


class DaemonGone(Exception):
    """The daemon is not running (any more)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
    free = [octet for octet in octets if f"172.{octet}." not in routes]
    random.shuffle(free)
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


@dataclass
class Daemon:
    """One data directory, served by successive `aerodrome serve` processes (a kill, then a restart on it)."""

    workdir: Path
    machine_pool: str = field(default_factory=unrouted_pool)  # keeps side-by-side runs apart
    api_port: int = field(default_factory=free_port)
    registry_port: int = field(default_factory=free_port)
    edge_http_port: int = field(default_factory=free_port)
    volume_unit_mb: int = 16
    process: subprocess.Popen[bytes] | None = None
    token: str = ""

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "serve.log"

    @property
    def registry(self) -> str:
        return f"127.0.0.1:{self.registry_port}"

    def start(self, fault: str | None = None) -> None:
        """Start serving; with `fault` (`step[#n]`), the daemon kills itself at that step."""
        env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
        if fault:
            env[FAULT_ENV] = fault
        argv = [sys.executable, "-m", "aerodrome", "serve", "--data-dir", str(self.data_dir)]
        argv += ["--api", f"127.0.0.1:{self.api_port}", "--registry", self.registry, "--no-rate-limits"]
        argv += ["--volume-unit-mb", str(self.volume_unit_mb), "--machine-ipv4-pool", self.machine_pool, "--no-egress"]
        argv += ["--edge-http", f"127.0.0.1:{self.edge_http_port}", "--edge-https", f"127.0.0.1:{free_port()}"]
        argv += ["--no-dns"]  # the host's one resolver at fdaa::3 belongs to the operator's own serve, if any
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        self._wait_ready()
        if not self.token:
            self.token = self._cli("tokens", "create").strip()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if not self.alive():
                raise DaemonGone(f"aerodrome serve exited while starting:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{self.api_port}/health", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise DaemonGone(f"aerodrome serve did not answer in time:\n{self.log_tail()}")

    def _cli(self, *args: str) -> str:
        argv = [sys.executable, "-m", "aerodrome", *args, "--data-dir", str(self.data_dir)]
        return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60).stdout

    @property
    def pid(self) -> int:
        assert self.process is not None, "the daemon is not started"
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.api_port}", headers={"Authorization": f"Bearer {self.token}"}, timeout=60
        )

    def wait_killed(self, timeout: float = 60.0) -> int | None:
        """The exit status once the process ended within `timeout` (-9 for a SIGKILL), else None."""
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """SIGTERM, as an operator stops it: machines keep running for the next daemon to adopt."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.kill()
            self.process.wait()

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
