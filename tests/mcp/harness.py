"""Run wrap.py for real: `python3 -S -I` (no site-packages, so stdlib only) around the test MCP server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aerodrome.mcp.wrap

WRAP_PY = Path(aerodrome.mcp.wrap.__file__).resolve()
FS_SERVER = Path(__file__).with_name("fs_server.py")
STARTUP_GUARD = 60.0  # seconds; a guard against hanging, not a measurement


@dataclass
class RunningWrap:
    """A wrap process listening on loopback, with its stderr collected."""

    process: asyncio.subprocess.Process
    port: int
    log: list[str] = field(default_factory=list)
    logged: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for_log(self, text: str) -> None:
        """Return once a stderr line containing `text` has been logged."""
        while not any(text in line for line in self.log):
            self.logged.clear()
            await asyncio.wait_for(self.logged.wait(), STARTUP_GUARD)

    @property
    def url(self) -> str:
        """The base URL to reach it."""
        return f"http://127.0.0.1:{self.port}/"

    @property
    def passthru_pid(self) -> int:
        """The pid of the program wrap started at launch (the first one it logs)."""
        return next(int(m.group(1)) for line in self.log if (m := re.search(r"started .* \(pid (\d+)\)", line)))


async def _collect(stream: asyncio.StreamReader, wrap: RunningWrap) -> None:
    while line := await stream.readline():
        wrap.log.append(line.decode(errors="replace"))
        wrap.logged.set()


@contextlib.asynccontextmanager
async def running_wrap(
    root: Path, options: Sequence[str] = (), env: dict[str, str] | None = None, port: int = 0
) -> AsyncIterator[RunningWrap]:
    """Start wrap.py with `options` around fs_server.py serving `root`; stop it and its programs afterwards."""
    command = [sys.executable, str(FS_SERVER), str(root)]
    argv = ["python3", "-S", "-I", str(WRAP_PY), "--host", "127.0.0.1", "--port", str(port), *options, "--", *command]
    process = await asyncio.create_subprocess_exec(
        *argv, stderr=asyncio.subprocess.PIPE, env={**os.environ, **(env or {})}
    )
    assert process.stderr is not None
    wrap = RunningWrap(process, 0)
    collector: asyncio.Task[None] | None = None
    try:
        while not wrap.port:
            line = (await asyncio.wait_for(process.stderr.readline(), STARTUP_GUARD)).decode()
            assert line, f"wrap exited before listening: {''.join(wrap.log)}"
            wrap.log.append(line)
            if match := re.search(r"listening on port (\d+)", line):
                wrap.port = int(match.group(1))
        collector = asyncio.create_task(_collect(process.stderr, wrap))
        yield wrap
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        await process.wait()
        if collector is not None:
            await collector


def process_gone(pid: int) -> bool:
    """Whether no process (or only an unreaped zombie of someone else) has this pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    status = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    return status == "Z"
