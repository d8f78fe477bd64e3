"""The embedded image registry: the CNCF distribution registry (`docker-registry`) on loopback, like registry.fly.io.

The child is a `subprocess.Popen` polled from asyncio rather than an asyncio subprocess: an asyncio child is
bound to the event loop that started it, and the registry often outlives that loop (a test session starts it
in one loop and stops it in another). Its output goes to a log file, never a pipe. It dies with its parent
(PR_SET_PDEATHSIG), and a registry left by a parent that was killed before that was set up is stopped by the
next start on the same data directory (found through its pid file).

With `auth` it takes only bearer tokens (distribution's `auth: token`): signed by `RegistryTokens`' key, whose
certificate is its `rootcertbundle`, and issued at `realm` (the API's `/v2/token`). `supervise()` restarts a
registry that died, with exponential backoff, and `problem` says meanwhile why it is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from aerodrome.core import UnavailableError

log = logging.getLogger("aerodrome.registry")

REGISTRY_BINARY = "docker-registry"
START_TIMEOUT = 15.0
POLL_INTERVAL = 0.02
_PR_SET_PDEATHSIG = 1
# Loaded before any fork: the child may only call into it, not dlopen, between fork and exec.
_LIBC = ctypes.CDLL(None, use_errno=True)

_CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: {listen}
"""
_AUTH = """\
auth:
  token:
    realm: {realm}
    service: {service}
    issuer: {issuer}
    rootcertbundle: {bundle}
"""
# Restarts after a death: the first after RESTART_DELAY, doubling up to RESTART_DELAY_MAX; a registry that has
# served STABLE_AFTER seconds starts over from the first delay.
RESTART_DELAY = 0.5
RESTART_DELAY_MAX = 30.0
STABLE_AFTER = 60.0
WATCH_INTERVAL = 0.25
_TCP_LISTEN = "0A"  # a socket's state in /proc/net/tcp


@dataclass(frozen=True, slots=True)
class TokenAuth:
    """distribution's `auth: token` settings."""

    realm: str  # where clients get tokens: the API's /v2/token
    service: str
    issuer: str
    rootcertbundle: Path


class EmbeddedRegistry:
    """One `docker-registry serve` process storing its blobs under `data_dir`, answering plain http on `listen`."""

    def __init__(
        self,
        data_dir: Path,
        listen: str = "127.0.0.1:5000",
        *,
        binary: str = REGISTRY_BINARY,
        auth: TokenAuth | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.listen = listen
        self.binary = binary
        self.auth = auth
        self._proc: subprocess.Popen[bytes] | None = None
        self._problem: str | None = "not started"
        self._restarts = 0

    @property
    def url(self) -> str:
        """The registry's host:port, as used in image references (`127.0.0.1:5000/app:v1`)."""
        return self.listen

    @property
    def log_path(self) -> Path:
        return self.data_dir / "registry.log"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "registry.pid"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def restarts(self) -> int:
        """How many times `supervise` has started the registry again after it died."""
        return self._restarts

    def problem(self) -> str | None:
        """Why the registry cannot serve right now, or None while it does."""
        if self.running and self._problem is None:
            return None
        if self._problem is None and self._proc is not None:
            return f"the registry process exited (status {self._proc.returncode})"
        return self._problem or "not running"

    async def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the registry and return once `GET /v2/` answers; UnavailableError says why it cannot."""
        if self.running:
            return
        executable = shutil.which(self.binary)
        if executable is None:
            raise UnavailableError(f"{self.binary} is not installed (run scripts/install-deps.sh)")
        host, port = _split_listen(self.listen)
        config = self._write_config()
        await self._stop_leftover(config)
        if port:
            _check_port_free(host, port, self.listen)
        self._proc = self._spawn(executable, config)
        self.pid_path.write_text(str(self._proc.pid))
        try:
            if not port:  # the kernel chose it: keep it, so that a restart after a death serves the same address
                port = await self._wait_listening(timeout)
                self.listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            await self._wait_ready(host, port, timeout)
        except BaseException:
            await self.stop()
            raise
        self._problem = None

    async def supervise(self) -> None:
        """Watch the registry for good; when it dies, log it and start it again after a backoff (bounded by
        RESTART_DELAY_MAX), however often it dies. Cancel this task before `stop`."""
        delay, up_since, reason = RESTART_DELAY, time.monotonic(), "not running"
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            if self.running:
                if time.monotonic() - up_since >= STABLE_AFTER:
                    delay = RESTART_DELAY
                continue
            if self._proc is not None:  # it died: reap it
                proc, self._proc = self._proc, None
                reason = f"the registry process exited (status {proc.wait()})"
                log.warning("registry on %s: %s", self.listen, reason)
            self._problem = f"{reason}; restarting in {delay:g}s"
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_DELAY_MAX)
            try:
                await self.start()
            except (UnavailableError, OSError) as exc:
                reason = (
                    f"the registry does not start again: {exc.message if isinstance(exc, UnavailableError) else exc}"
                )
                log.error("registry on %s: %s", self.listen, reason)
                self._problem = reason
                continue
            self._restarts += 1
            up_since = time.monotonic()
            log.info("registry on %s restarted (pid %d)", self.listen, self._proc.pid if self._proc else -1)

    async def stop(self, timeout: float = 5.0) -> None:
        """Terminate the registry, kill it if it outlives `timeout`, and reap it."""
        proc, self._proc = self._proc, None
        self._problem = "stopped"
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            if not await _wait_exit(proc, timeout):
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await _wait_exit(proc, timeout)
        proc.wait()
        self.pid_path.unlink(missing_ok=True)

    async def __aenter__(self) -> EmbeddedRegistry:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def _spawn(self, executable: str, config: Path) -> subprocess.Popen[bytes]:
        with open(self.log_path, "ab") as log:
            return subprocess.Popen(
                [executable, "serve", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C meant for the daemon must not kill the registry first
                preexec_fn=_die_with_parent,
            )

    async def _stop_leftover(self, config: Path) -> None:
        """Stop a registry that an earlier, killed parent left serving this data directory."""
        pid = _leftover_pid(self.pid_path, config)
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        while _alive(pid):
            if time.monotonic() >= deadline:
                raise UnavailableError(f"an earlier registry (pid {pid}) on {self.data_dir} does not stop")
            await asyncio.sleep(POLL_INTERVAL)

    def _write_config(self) -> Path:
        storage = self.data_dir / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "config.yml"
        text = _CONFIG.format(storage=storage, listen=self.listen)
        if self.auth is not None:
            auth = self.auth
            text += _AUTH.format(realm=auth.realm, service=auth.service, issuer=auth.issuer, bundle=auth.rootcertbundle)
        config.write_text(text)
        return config

    async def _wait_ready(self, host: str, port: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise UnavailableError(f"registry on {self.listen} exited at start: {self._log_tail()}")
            if await _answers_v2(host, port):
                return
            await asyncio.sleep(POLL_INTERVAL)
        raise UnavailableError(f"registry on {self.listen} did not answer within {timeout:g}s: {self._log_tail()}")

    async def _wait_listening(self, timeout: float) -> int:
        """The port the child took for port 0, read from its sockets in /proc once it listens."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise UnavailableError(f"registry on {self.listen} exited at start: {self._log_tail()}")
            port = listening_port(self._proc.pid)
            if port is not None:
                return port
            await asyncio.sleep(POLL_INTERVAL)
        raise UnavailableError(f"registry on {self.listen} did not listen within {timeout:g}s: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace").strip()[-1000:] or "(no output)"
        except OSError:
            return "(no log)"


def _split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise UnavailableError(f"registry listen address {listen!r} must be host:port")
    return host.strip("[]"), int(port)


def listening_port(pid: int) -> int | None:
    """The TCP port process `pid` listens on (its first listening socket), or None while it listens on none."""
    try:
        fds = Path(f"/proc/{pid}/fd")
        sockets = {os.readlink(fds / fd) for fd in os.listdir(fds)}
    except OSError:
        return None
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == _TCP_LISTEN and f"socket:[{fields[9]}]" in sockets:
                    return int(fields[1].rsplit(":", 1)[1], 16)
    return None


def _check_port_free(host: str, port: int, listen: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            reason = "the port is taken" if exc.errno == errno.EADDRINUSE else str(exc)
            raise UnavailableError(f"registry cannot listen on {listen}: {reason}") from exc


async def _answers_v2(host: str, port: int) -> bool:
    """True once `GET /v2/` gets an HTTP answer (200, or 401 when auth is configured)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(f"GET /v2/ HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n".encode())
        status = await asyncio.wait_for(reader.readline(), 1.0)
        return status.split(b" ")[1:2] in ([b"200"], [b"401"])
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def _leftover_pid(pid_path: Path, config: Path) -> int | None:
    try:
        pid = int(pid_path.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if str(config).encode() in cmdline else None  # else the pid was reused by another program


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _die_with_parent() -> None:
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


async def _wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(POLL_INTERVAL)
    return True
