"""Running host tools (runc, skopeo, umoci, ip, losetup…) from asyncio, with their failures as aerodrome errors."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from aerodrome.core import InsufficientStorageError, RuntimeFailureError, UnavailableError, is_out_of_space


def with_tool_umask(argv: Sequence[str]) -> list[str]:
    """`argv` under umask 022, for tools whose files a machine sees (runc's mount points, the directories an
    unpack implies): the daemon runs with 077, and uvloop cannot set a child's umask. A shell that execs
    costs about a millisecond."""
    return ["/bin/sh", "-c", 'umask 022 && exec "$@"', "sh", *argv]


@dataclass(frozen=True, slots=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        return self.stdout.decode(errors="replace")


class ToolError(RuntimeFailureError):
    """A host tool exited non-zero; carries its output so callers can tell causes apart."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: bytes) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr.decode(errors="replace").strip()
        super().__init__(f"{os.path.basename(argv[0])} failed ({returncode}): {self.stderr[-2000:]}")


async def run(
    argv: Sequence[str],
    *,
    timeout: float = 60.0,
    stdin: bytes | None = None,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> Completed:
    """Run a tool to completion with its output captured; kill it if it outlives `timeout`.

    Never use this for a command that hands its stdio to a long-lived child (`runc run -d`): the pipes
    would stay open for the child's whole life. Give such commands files instead.
    """
    pipe = subprocess.PIPE
    proc = await spawn(
        argv, stdin=pipe if stdin is not None else subprocess.DEVNULL, stdout=pipe, stderr=pipe, env=env, cwd=cwd
    )
    loop = asyncio.get_running_loop()
    try:
        out, err = await loop.run_in_executor(_TOOL_THREADS, proc.communicate, stdin, timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        await loop.run_in_executor(_TOOL_THREADS, _drain_killed, proc)
        raise TimeoutError(f"{os.path.basename(argv[0])} did not finish within {timeout:g}s") from None
    except asyncio.CancelledError:
        proc.kill()  # the thread's communicate then sees the pipes close, and returns
        await exited(proc)
        raise
    assert proc.returncode is not None
    if check and proc.returncode != 0:
        raise ToolError(argv, proc.returncode, err)
    return Completed(tuple(argv), proc.returncode, out, err)


#: The threads that feed tools their stdin and read their output, apart from asyncio's default pool (which the
#: daemon's fsyncs and file reads use): a long pull or fsck occupies one for its whole run.
_TOOL_THREADS = concurrent.futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="aerodrome-tool")


async def spawn(
    argv: Sequence[str],
    *,
    stdin: int | None,
    stdout: int | None,
    stderr: int | None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    pass_fds: Sequence[int] = (),
) -> subprocess.Popen[bytes]:
    """Start a process from a worker thread, where CPython's subprocess uses vfork: uvloop forks the whole daemon
    on the event loop instead, which stalls every request for the copy of its page tables (measured here: 17 ms
    a process for a 200 MB heap, against 1.5 ms off the loop). `exited` waits for its end."""
    try:
        return await asyncio.to_thread(
            subprocess.Popen,
            list(argv),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            pass_fds=tuple(pass_fds),
        )
    except FileNotFoundError:
        raise UnavailableError(f"{argv[0]} is not installed (run scripts/install-deps.sh)") from None


async def exited(proc: subprocess.Popen[bytes]) -> int:
    """The exit status of a spawned process, awaited on a pidfd (readable once the process has exited): no thread
    waits. The process is ours to reap, so its pid cannot be reused before this returns."""
    if proc.returncode is not None:
        return proc.returncode
    loop = asyncio.get_running_loop()
    pidfd = os.pidfd_open(proc.pid)
    try:
        if proc.poll() is None:
            done = loop.create_future()
            loop.add_reader(pidfd, _settle, done)
            try:
                await done
            finally:
                loop.remove_reader(pidfd)
    finally:
        os.close(pidfd)
    return proc.wait()


@contextlib.contextmanager
def map_runtime_errors(what: str) -> Iterator[None]:
    """Turn OS-level failures into RuntimeFailureError naming the operation, keeping the cause."""
    try:
        yield
    except (OSError, TimeoutError) as exc:
        if is_out_of_space(exc):
            raise InsufficientStorageError(what) from exc
        raise RuntimeFailureError(f"{what}: {exc}") from exc


def _settle(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)


def _drain_killed(proc: subprocess.Popen[bytes]) -> None:
    """Close the pipes of a killed tool and reap it; a child it left holding them does not keep us waiting."""
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()
