"""The runc command line, as the driver uses it: run detached, delete, state, exec."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from aerodrome.core import EXEC_OUTPUT_CAP, ExecResult, RuntimeFailureError
from aerodrome.runtime.process import exited, run, spawn, with_tool_umask
from aerodrome.runtime.runc.layout import MachinePaths

RUNC = "runc"


class Runc:
    """runc with its state under one root of our own, apart from any other runc user on the host."""

    def __init__(self, root: Path) -> None:
        self.root = str(root)

    def _argv(self, *args: str) -> list[str]:
        return with_tool_umask([RUNC, "--root", self.root, *args])

    async def run_detached(
        self, machine_id: str, paths: MachinePaths, config: bytes, stdin: int, timeout: float = 30.0
    ) -> int:
        """`runc run -d` of `config`; returns the host pid of the container's init.

        runc hands its own stdio to the container: stdin is `stdin` (the wrapper's gate), stdout and stderr
        the machine's log file, never a pipe the daemon reads. The config never touches the disk: it goes
        through a pipe that `config.json` names, so the env (secrets included) is only ever in memory.
        """
        # runc runs under umask 022 (for the mount points it makes) and would create its log 0644: start it
        # empty and 0600 here, as every file of the daemon's is; runc appends to it and keeps its mode.
        fd = os.open(paths.runc_log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        os.fchmod(fd, 0o600)  # one an older version left keeps its mode through O_TRUNC
        os.close(fd)
        argv = self._argv("--log", str(paths.runc_log), "--log-format", "json", "run", "-d")
        argv += ["--pid-file", str(paths.pid_file), "--bundle", str(paths.dir), machine_id]
        log_fd = os.open(paths.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            with _Piped(config) as piped:
                _link_config(paths.config, piped.read_fd)
                proc = await spawn(argv, stdin=stdin, stdout=log_fd, stderr=log_fd, pass_fds=(piped.read_fd,))
                await piped.sent()
        finally:
            os.close(log_fd)
        try:
            returncode = await asyncio.wait_for(exited(proc), timeout)
        except (TimeoutError, asyncio.CancelledError):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await exited(proc)
            raise
        if returncode != 0:
            raise RuntimeFailureError(f"machine {machine_id} failed to start: {last_error(paths.runc_log)}")
        os.chmod(paths.pid_file, 0o600)  # runc wrote it under umask 022
        return int(paths.pid_file.read_text())

    async def exec_attached(
        self, machine_id: str, process: dict[str, Any], pid_file: Path, output: int, hold: int | None = None
    ) -> subprocess.Popen[bytes]:
        """`runc exec` of `process` in the machine, attached: the runc process ends with the process, and with
        its exit status; its stdout and stderr go to `output`. A container of a machine runs this way. `hold`,
        a descriptor the runc process keeps open under the same number (not passed on to the process)."""
        argv = self._argv("exec", "--pid-file", str(pid_file))
        with _Piped(json.dumps(process).encode()) as piped:
            argv += ["--process", f"/proc/self/fd/{piped.read_fd}", machine_id]
            kept = (piped.read_fd,) if hold is None else (piped.read_fd, hold)
            proc = await spawn(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=output, pass_fds=kept)
            await piped.sent()
        return proc

    def known(self, machine_id: str) -> bool:
        """Whether runc has state for the container: without it, asking runc costs a process for nothing."""
        return os.path.exists(os.path.join(self.root, machine_id))

    async def delete(self, machine_id: str) -> None:
        """Kill whatever is left and remove the container (and its cgroups); a no-op when absent."""
        if not self.known(machine_id):
            return
        await run(self._argv("delete", "--force", machine_id), timeout=30, check=False)

    async def state(self, machine_id: str) -> dict[str, Any] | None:
        """runc's view of the container (`status`: created, running, paused, stopped), or None if unknown."""
        if not self.known(machine_id):
            return None
        result = await run(self._argv("state", machine_id), timeout=10, check=False)
        if result.returncode != 0:
            return None
        state: dict[str, Any] = json.loads(result.stdout)
        return state

    async def list_ids(self) -> list[str]:
        result = await run(self._argv("list", "--format", "json"), timeout=10)
        return [c["id"] for c in json.loads(result.stdout or b"null") or []]

    async def exec(
        self,
        machine_id: str,
        paths: MachinePaths,
        process: dict[str, Any],
        stdin: bytes | None,
        timeout: float,
        output_cap: int = EXEC_OUTPUT_CAP,
    ) -> ExecResult:
        """Run the OCI `process` in the machine; after `timeout` seconds it is killed and its output so far
        returned. The process spec (the machine's env) reaches runc through a pipe, as `run_detached`'s does.

        Of each of stdout and stderr the first `output_cap` bytes are kept; the rest is read and dropped, so the
        process never blocks on a full pipe and the daemon never holds more than the cap."""
        pid_file = paths.dir / f"exec-{os.urandom(4).hex()}.pid"
        with _Piped(json.dumps(process).encode()) as piped:
            proc = await asyncio.create_subprocess_exec(
                *self._argv("exec", "--pid-file", str(pid_file), "--process", f"/proc/self/fd/{piped.read_fd}"),
                machine_id,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=(piped.read_fd,),
            )
            await piped.sent()
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        out, err = _Capped(output_cap), _Capped(output_cap)
        reads = [asyncio.create_task(out.drain(proc.stdout)), asyncio.create_task(err.drain(proc.stderr))]
        writer = proc.stdin

        async def feed_and_wait() -> int:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                writer.write(stdin or b"")
                await writer.drain()  # under the timeout too: a process that never reads its stdin is killed
            writer.close()
            return await proc.wait()

        try:
            returncode = await asyncio.wait_for(feed_and_wait(), timeout)
        except TimeoutError:
            _kill_from_pid_file(pid_file)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            returncode = 128 + signal.SIGKILL
        finally:
            if proc.returncode is None:
                _kill_from_pid_file(pid_file)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            # What is left in the pipes comes at once; a background child still holding them does not hold us.
            _, pending = await asyncio.wait(reads, timeout=READ_GRACE)
            for task in pending:
                task.cancel()
            await asyncio.gather(*reads, return_exceptions=True)
            pid_file.unlink(missing_ok=True)
        exit_signal = returncode - 128 if returncode > 128 else 0
        return ExecResult(
            exit_code=returncode,
            stdout=bytes(out.kept),
            stderr=bytes(err.kept),
            exit_signal=exit_signal,
            truncated=out.truncated or err.truncated,
        )


READ_GRACE = 2.0  # seconds to read what an exec left in its pipes once it has exited
_CHUNK = 64 * 1024


class _Capped:
    """The first `cap` bytes of a stream; the rest is read to its end and dropped."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.kept = bytearray()
        self.truncated = False

    async def drain(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(_CHUNK):
            room = self.cap - len(self.kept)
            if len(chunk) > room:
                self.truncated = True
            if room > 0:
                self.kept += chunk[:room]


PIPE_MAX = 1024 * 1024  # Linux's default pipe-max-size: a config up to this is written without a thread


class _Piped:
    """A pipe holding `data` for a child to read through the inherited `read_fd`.

    The pipe is grown to hold the data where it can, so the write is done at once; a larger one is fed from a
    thread while the child reads. Once the child has its copy, `sent()` drops the daemon's read end, so a
    child that dies unread ends the write with EPIPE, never a hang.
    """

    def __init__(self, data: bytes) -> None:
        self.read_fd, self._write_fd = os.pipe()
        self._data = data
        with contextlib.suppress(OSError):
            fcntl.fcntl(self._write_fd, fcntl.F_SETPIPE_SZ, min(max(len(data), 4096), PIPE_MAX))
        self._written = 0
        if len(data) <= fcntl.fcntl(self._write_fd, fcntl.F_GETPIPE_SZ):
            self._written = os.write(self._write_fd, data)

    async def sent(self) -> None:
        self._close("read_fd")
        try:
            if self._written < len(self._data):
                with contextlib.suppress(BrokenPipeError):
                    await asyncio.to_thread(_write_all, self._write_fd, self._data[self._written :])
        finally:
            self._close("_write_fd")

    def _close(self, name: str) -> None:
        fd = getattr(self, name)
        if fd >= 0:
            setattr(self, name, -1)
            os.close(fd)

    def __enter__(self) -> _Piped:
        return self

    def __exit__(self, *exc: object) -> None:
        self._close("read_fd")
        self._close("_write_fd")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _link_config(config: Path, fd: int) -> None:
    """Make the bundle's config.json name the pipe runc inherits as `fd`."""
    target = f"/proc/self/fd/{fd}"
    with contextlib.suppress(OSError):
        if os.readlink(config) == target:
            return
    config.unlink(missing_ok=True)
    os.symlink(target, config)


def _kill_from_pid_file(pid_file: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pid_file.read_text()), signal.SIGKILL)


def last_error(runc_log: Path) -> str:
    """The last message runc logged (its --log is JSON lines: {"level", "msg", "time"})."""
    try:
        lines = runc_log.read_text().splitlines()
    except OSError:
        return "no runc log"
    for line in reversed(lines):
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if entry.get("level") in ("error", "fatal"):
                return str(entry.get("msg", line))
    return lines[-1] if lines else "runc failed without a message"
