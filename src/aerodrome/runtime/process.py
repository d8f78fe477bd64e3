"""Running host tools (runc, skopeo, umoci, ip, losetup…) from asyncio, with their failures as aerodrome errors."""

from __future__ import annotations

import asyncio
import contextlib
import os
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
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
    except FileNotFoundError:
        raise UnavailableError(f"{argv[0]} is not installed (run scripts/install-deps.sh)") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except (TimeoutError, asyncio.CancelledError):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    if check and proc.returncode != 0:
        raise ToolError(argv, proc.returncode, err)
    return Completed(tuple(argv), proc.returncode, out, err)


@contextlib.contextmanager
def map_runtime_errors(what: str) -> Iterator[None]:
    """Turn OS-level failures into RuntimeFailureError naming the operation, keeping the cause."""
    try:
        yield
    except (OSError, TimeoutError) as exc:
        if is_out_of_space(exc):
            raise InsufficientStorageError(what) from exc
        raise RuntimeFailureError(f"{what}: {exc}") from exc
