"""The containers of one running multi-container machine, supervised by the daemon (Fly's Pilot, from outside).

Each container waits for its `depends_on` conditions (a dependency that can no longer meet one fails it, and
it never starts), runs as one attached `runc exec` into its root (the runc process ends with it, with its exit
status: held by the daemon, never read from a file the machine writes), is restarted by its own policy, and is
probed by its healthchecks: exec ones inside it, tcp and http ones from the host at the machine's private IPv4.
Its output reaches the machine's log through a pipe the daemon reads, each line prefixed `[<name>] `.

Each container's progress is recorded in the machine's directory on the host (the machine cannot write there),
with the pid and kernel start time of its runc process. A restarted daemon re-adopts the containers from those
records (`adopt`): a runc process still alive with the same start time is watched again through a pidfd (the
status of its exit is then unknown, a failure to the restart policy), one that is gone ends as such an exit.
The runc process also holds the read end of the container's output pipe, so the relay resumes from it. When
every container has ended for good, the machine is told to end (`on_ended`), as Fly's Pilot ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal as signals
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aerodrome.core import (
    ContainerDependency,
    ContainerHealthcheck,
    ContainerRun,
    ContainerState,
    ContainerStatus,
    DependencyCondition,
    ExitInfo,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    SandboxSpec,
    restart_backoff,
    rfc3339,
    should_restart,
)
from aerodrome.runtime.process import exited
from aerodrome.runtime.runc import containers
from aerodrome.runtime.runc.layout import MachinePaths, read_json, write_json
from aerodrome.runtime.runc.runc import Runc
from aerodrome.runtime.runc.supervisor import process_start_time

log = logging.getLogger(__name__)
JSON = dict[str, Any]

CLOSE_GRACE = 2.0  # seconds for the containers' runc processes to end once their machine has
_CHUNK = 64 * 1024


@dataclass(slots=True)
class _Track:
    """One container's progress, as its dependants wait on it."""

    spec: ContainerRun
    record: Path
    state: ContainerState = ContainerState.PENDING
    exit_code: int | None = None
    restarts: int = 0
    healthy: bool | None = None
    updated_at: str = ""
    pid_file: str = ""
    runc: tuple[int, int | None, int] = (0, None, -1)  # pid, start time, output pipe of the runc running it
    started: asyncio.Event = field(default_factory=asyncio.Event)
    became_healthy: asyncio.Event = field(default_factory=asyncio.Event)
    first_exit: asyncio.Event = field(default_factory=asyncio.Event)
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # ended for good, or never to start

    def status(self) -> ContainerStatus:
        return ContainerStatus(self.spec.name, self.state, self.exit_code, self.restarts, self.healthy, self.updated_at)

    def set(self, state: ContainerState) -> None:
        self.state, self.updated_at = state, rfc3339(time.time())
        fields = {"state": state.value, "exit_code": self.exit_code, "restarts": self.restarts, "runc": self.runc}
        with contextlib.suppress(OSError):  # a record not written only costs the container its re-adoption
            write_json(self.record, fields, durable=False)

    def restore(self, recorded: JSON) -> None:
        """Take the restart count and final exit of the last daemon's record."""
        restarts, code = recorded.get("restarts"), recorded.get("exit_code")
        self.restarts = restarts if type(restarts) is int and restarts >= 0 else 0
        self.exit_code = code if type(code) is int else None


class Pod:
    def __init__(
        self, runc: Runc, machine_id: str, paths: MachinePaths, spec: SandboxSpec, ipv4: str,
        on_ended: Callable[[int], None],
    ) -> None:  # fmt: skip
        self._runc, self._machine_id, self._paths, self._ipv4 = runc, machine_id, paths, ipv4
        self._tracks = {c.name: _Track(c, paths.dir / f"container-{c.name}.json") for c in spec.containers}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._on_ended: Callable[[int], None] | None = on_ended
        self._reaping: set[asyncio.Future[int]] = set()

    def start(self) -> None:
        for track in self._tracks.values():
            track.set(ContainerState.PENDING)  # no record of an earlier run is left to adopt
        self._launch({})

    def adopt(self) -> None:
        """Supervise the containers of a machine the last daemon ran, from where its records leave them."""
        self._launch({name: _recorded(track.record) for name, track in self._tracks.items()})

    def _launch(self, recorded: dict[str, JSON]) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._supervise(t, recorded.get(t.spec.name, {})), name=f"container {t.spec.name}")
            for t in self._tracks.values()
        ]

    def statuses(self) -> tuple[ContainerStatus, ...]:
        return tuple(track.status() for track in self._tracks.values())

    def container(self, name: str) -> ContainerRun | None:
        track = self._tracks.get(name)
        return track.spec if track else None

    def running(self, name: str) -> bool:
        track = self._tracks.get(name)
        return track is not None and track.state is ContainerState.RUNNING

    async def stop(self, timeout: float) -> None:
        """Give each running container its stop signal, and up to `timeout` seconds (its own stop timeout at
        most) to end; the machine's own stop then ends whatever is left."""
        self._stopping = True
        for track in self._tracks.values():
            if track.state is ContainerState.RUNNING:
                _signal_from(track.pid_file, track.spec.stop_signal)
        running = [t.settled.wait() for t in self._tracks.values() if t.state is ContainerState.RUNNING]
        if running:
            longest = max(t.spec.stop_timeout for t in self._tracks.values())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*running), min(timeout, longest))

    async def close(self) -> None:
        """The machine ended (its processes with it): let each container's task see its exit, then end them."""
        self._stopping = True
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=CLOSE_GRACE)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- one container -----------------------------------------------------------------------------------

    async def _supervise(self, track: _Track, recorded: JSON) -> None:
        try:
            state = recorded.get("state")
            track.restore(recorded)
            if state in (ContainerState.EXITED, ContainerState.FAILED):  # ended for good under the last daemon
                if track.exit_code is not None:
                    track.first_exit.set()
                track.set(ContainerState(state))
                return
            rejoin = state == ContainerState.RUNNING
            if not rejoin and not await self._dependencies_met(track):
                track.set(ContainerState.FAILED)
                return
            while True:
                code = await self._rejoin(track, recorded.get("runc")) if rejoin else await self._run_once(track)
                rejoin, track.exit_code = False, code
                track.first_exit.set()
                policy = track.spec.restart_policy
                exit = ExitInfo(exit_code=-1 if code is None else code, requested_stop=self._stopping)
                if not should_restart(policy, track.spec.restart_max_retries, exit, track.restarts):
                    track.set(ContainerState.EXITED)
                    return
                await asyncio.sleep(restart_backoff(track.restarts))
                track.restarts += 1
        except Exception:
            log.exception("container %s of machine %s failed", track.spec.name, self._machine_id)
            track.set(ContainerState.FAILED)
        finally:
            track.settled.set()
            self._maybe_ended()

    async def _dependencies_met(self, track: _Track) -> bool:
        for dependency in track.spec.depends_on:
            if not await self._met(dependency):
                log.info("container %s of %s: %s not %s", track.spec.name, self._machine_id, dependency.name,
                         dependency.condition.value)  # fmt: skip
                return False
        return True

    def _maybe_ended(self) -> None:
        """Once every container has ended for good (not by the machine's stop), the machine stops too: with
        status 0 when each of them exited 0, else 1."""
        if self._stopping or self._on_ended is None or not all(t.settled.is_set() for t in self._tracks.values()):
            return
        on_ended, self._on_ended = self._on_ended, None
        on_ended(0 if all(t.exit_code == 0 for t in self._tracks.values()) else 1)

    async def _rejoin(self, track: _Track, runc: object) -> int | None:
        """Watch the runc process the last daemon left running the container until it ends (status unknown:
        it is not this daemon's child); None at once when it is gone, or its pid is another process's now."""
        pid, start_time, held = runc if isinstance(runc, list) and len(runc) == 3 else (0, None, -1)
        if type(pid) is not int or pid <= 0 or start_time is None or type(held) is not int:
            return None
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return None
        try:
            if process_start_time(pid) != start_time:  # checked once the pidfd holds the pid: no reuse after
                return None
            track.pid_file = str(self._paths.dir / f"container-{track.spec.name}.pid")
            track.runc = (pid, start_time, held)
            track.set(ContainerState.RUNNING)
            track.started.set()
            output = _reopen_output(pid, held)
            relay = None if output is None else asyncio.ensure_future(_relay(output, self._paths, track.spec.name))
            await self._watching(track, _ended(pidfd))
            if relay is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(relay, 2.0)
            return None
        finally:
            asyncio.get_running_loop().remove_reader(pidfd)  # before the close: the number may be reused at once
            os.close(pidfd)

    async def _watching(self, track: _Track, ends: asyncio.Future[Any]) -> None:
        """Probe the running container's healthchecks until `ends` is done."""
        checks = [asyncio.ensure_future(self._healthcheck(track, check)) for check in track.spec.healthchecks]
        try:
            await ends
        finally:
            for task in checks:
                task.cancel()
            await asyncio.gather(*checks, return_exceptions=True)

    async def _met(self, dependency: ContainerDependency) -> bool:
        """Wait until the dependency's condition holds (True) or can no longer hold (False)."""
        other = self._tracks[dependency.name]
        wanted = {
            DependencyCondition.STARTED: other.started,
            DependencyCondition.HEALTHY: other.became_healthy if other.spec.healthchecks else other.started,
            DependencyCondition.EXITED_SUCCESSFULLY: other.first_exit,
        }[dependency.condition]
        waits = [asyncio.ensure_future(wanted.wait()), asyncio.ensure_future(other.settled.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        if dependency.condition is DependencyCondition.EXITED_SUCCESSFULLY:
            return other.first_exit.is_set() and other.exit_code == 0
        return wanted.is_set()

    async def _run_once(self, track: _Track) -> int:
        spec = track.spec
        track.pid_file = str(self._paths.dir / f"container-{spec.name}.pid")
        read_fd, write_fd = os.pipe()
        try:
            process = containers.container_process(spec)
            proc = await self._runc.exec_attached(self._machine_id, process, Path(track.pid_file), write_fd, read_fd)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        track.runc = (proc.pid, process_start_time(proc.pid), read_fd)  # our child: its pid is not reused yet
        track.set(ContainerState.RUNNING)
        track.started.set()
        relay = asyncio.ensure_future(_relay(read_fd, self._paths, spec.name))
        code = asyncio.ensure_future(exited(proc))
        try:
            await self._watching(track, code)
            return code.result()
        finally:
            code.cancel()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(relay, 2.0)  # a child that kept the pipe open does not hold the exit

    async def _healthcheck(self, track: _Track, check: ContainerHealthcheck) -> None:
        """Probe every interval after the grace period; `success_threshold` passes in a row make the container
        healthy, `failure_threshold` failures in a row unhealthy."""
        await asyncio.sleep(check.grace_period)
        passes = failures = 0
        while True:
            ok = await self._probe(track.spec, check)
            passes, failures = (passes + 1, 0) if ok else (0, failures + 1)
            if passes >= check.success_threshold and track.healthy is not True:
                track.healthy = True
                track.became_healthy.set()
            elif failures >= check.failure_threshold and track.healthy is not False:
                track.healthy = False
                track.became_healthy.clear()
            await asyncio.sleep(check.interval if ok or track.healthy is not None else min(check.interval, 0.5))

    async def _probe(self, container: ContainerRun, check: ContainerHealthcheck) -> bool:
        try:
            return await asyncio.wait_for(self._probe_once(container, check), check.timeout)
        except (TimeoutError, OSError):
            return False

    async def _probe_once(self, container: ContainerRun, check: ContainerHealthcheck) -> bool:
        if check.exec_command:
            process = containers.container_process(container, check.exec_command)
            pid_file = self._paths.dir / f"check-{container.name}.pid"
            proc = await self._runc.exec_attached(self._machine_id, process, pid_file, subprocess.DEVNULL)
            try:
                return await exited(proc) == 0
            except asyncio.CancelledError:  # past its timeout: the probe and its runc go, and runc is reaped
                _signal_from(str(pid_file), signals.SIGKILL)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                reaping = asyncio.ensure_future(exited(proc))
                self._reaping.add(reaping)
                reaping.add_done_callback(self._reaping.discard)
                raise
        port = check.tcp_port or check.http_port
        reader, writer = await asyncio.open_connection(self._ipv4, port)
        try:
            if check.tcp_port:
                return True
            request = f"{check.http_method} {check.http_path} HTTP/1.0\r\nHost: {self._ipv4}\r\n\r\n"
            writer.write(request.encode())
            await writer.drain()
            status = (await reader.readline()).split()
            return len(status) >= 2 and status[1][:1] in (b"2", b"3")
        finally:
            writer.close()


def exec_process(pod: Pod | None, machine_id: str, spec: SandboxSpec, name: str, command: list[str]) -> JSON:
    """The process of an exec in container `name` (by default the machine's first), which must be running."""
    if not spec.containers:
        raise InvalidArgumentError(f"machine {machine_id} has no containers; exec without a container")
    name = name or spec.containers[0].name
    found = pod.container(name) if pod else None
    if found is None:
        raise NotFoundError(f"container {name!r} not found in machine {machine_id}")
    if pod is None or not pod.running(name):
        raise FailedPreconditionError(f"container {name} of machine {machine_id} is not running")
    return containers.container_process(found, tuple(command))


async def _relay(read_fd: int, paths: MachinePaths, name: str) -> None:
    """Copy a container's output into the machine's log, each line prefixed with the container's name."""
    os.set_blocking(read_fd, False)
    log_fd = os.open(paths.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    loop = asyncio.get_running_loop()
    prefix, at_line_start = f"[{name}] ".encode(), True
    readable = asyncio.Event()
    loop.add_reader(read_fd, readable.set)
    try:
        while True:
            await readable.wait()
            readable.clear()
            try:
                chunk = os.read(read_fd, _CHUNK)
            except BlockingIOError:
                continue
            if not chunk:
                return
            text, at_line_start = _prefixed(chunk, prefix, at_line_start)
            os.write(log_fd, text)
    finally:
        loop.remove_reader(read_fd)
        os.close(read_fd)
        os.close(log_fd)


def _prefixed(chunk: bytes, prefix: bytes, at_line_start: bool) -> tuple[bytes, bool]:
    """`chunk` with `prefix` before each line that starts in it; and whether the next chunk starts a line."""
    out, start = bytearray(), 0
    while start < len(chunk):
        end = chunk.find(b"\n", start)
        end = len(chunk) if end < 0 else end + 1
        if at_line_start:
            out += prefix
        out += chunk[start:end]
        at_line_start = chunk[end - 1 : end] == b"\n"
        start = end
    return bytes(out), at_line_start


def _recorded(record: Path) -> JSON:
    """A container's record from the last daemon; empty when missing or unreadable (then it starts afresh)."""
    try:
        found = read_json(record)
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _reopen_output(runc_pid: int, held: int) -> int | None:
    """The read end of a container's output pipe, which its runc process holds open for the next daemon (the
    machine cannot reach that host process); None when it is not a pipe there."""
    try:
        fd = os.open(f"/proc/{runc_pid}/fd/{held}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    if not stat.S_ISFIFO(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def _ended(pidfd: int) -> asyncio.Future[None]:
    """Done once the process behind `pidfd` has exited; the caller removes the reader before closing it."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(pidfd, settle)
    return done


def _signal_from(pid_file: str, signal: int) -> None:
    """Signal the container's process by the pid runc wrote; a process already gone is no error."""
    try:
        pid = int(Path(pid_file).read_text().strip())
    except (OSError, ValueError):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal)
