"""Machine logs: what a machine printed, and aerodrome's own lines about it, as Fly's logs API shows them.

A machine's stdout and stderr reach the host as bytes in one file that the machine's process writes; the host
agent hands them over in chunks read from a cursor (`OutputCursor`), and `split_output` cuts a chunk into
lines no longer than a bound, keeping an unfinished last line for the next chunk. aerodrome's own lines
(start, exit with its code, OOM, restart, stop, destroy) come from the machine's events (`event_log_line`),
written in the same transaction as the event. Each line kept is a `LogLine`; the store numbers them in order,
and that number is the paging token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aerodrome.core.models import Machine, MachineEvent

APP_PROVIDER = "app"  # flyctl prints `app[<machine>]` for a machine's own output
RUNNER_PROVIDER = "runner"  # and `runner[<machine>]` for the platform's lines about it
MAX_LINE_BYTES = 8192  # a longer line (or bytes with no newline at all) is cut into lines of this size


@dataclass(frozen=True, slots=True)
class LogLine:
    machine_id: str
    app_name: str
    region: str
    timestamp_us: int  # microseconds since the epoch
    message: str
    level: str = "info"
    provider: str = APP_PROVIDER
    id: int = 0  # given by the store: increasing, the paging token


@dataclass(frozen=True, slots=True)
class OutputCursor:
    """How far a machine's output file was read: which file (device and inode) and the byte offset in it."""

    file: str = ""
    offset: int = 0


@dataclass(frozen=True, slots=True)
class OutputChunk:
    data: bytes  # the bytes after the cursor given (a bounded read)
    cursor: OutputCursor  # where `data` ends
    skipped: int = 0  # bytes between the cursor given and `data` that were not kept (too far behind)


def split_output(data: bytes, *, final: bool = False, max_line: int = MAX_LINE_BYTES) -> tuple[list[str], int]:
    """The complete lines of `data` (each cut to `max_line` bytes) and how many bytes they used. An unfinished
    last line is left for the next chunk, unless it is already `max_line` long or `final`."""
    lines: list[str] = []
    start = 0
    while start < len(data):
        end = data.find(b"\n", start, start + max_line + 1)  # a newline right after a full line ends it
        if end >= 0:
            lines.append(_text(data[start:end]))
            start = end + 1
        elif len(data) - start >= max_line:
            lines.append(_text(data[start : start + max_line]))
            start += max_line
        elif final:
            lines.append(_text(data[start:]))
            start = len(data)
        else:
            break
    return lines, start


def _text(raw: bytes) -> str:
    return raw.rstrip(b"\r").decode("utf-8", errors="replace")


def event_log_line(machine: Machine, event: MachineEvent) -> LogLine | None:
    """aerodrome's own line about an event of `machine`, or None for events that say nothing to a reader."""
    worded = _wording(event)
    if worded is None:
        return None
    level, message = worded
    return LogLine(
        machine_id=machine.id,
        app_name=machine.app_name,
        region=machine.region,
        timestamp_us=event.timestamp * 1000,
        message=message,
        level=level,
        provider=RUNNER_PROVIDER,
    )


def _wording(event: MachineEvent) -> tuple[str, str] | None:
    kind = event.type
    if kind == "exit":
        return _exit_wording(event.request, event.status)
    if kind == "stop":
        code = (event.request.get("exit_event") or {}).get("exit_code")
        return "info", "machine stopped" + (f" (main process exit code {code})" if code is not None else "")
    fixed = {
        "launch": "machine created",
        "start": "machine started" if event.status == "started" else f"machine failed to start ({event.status})",
        "restart": "machine restarted",
        "suspend": "machine suspended",
        "update": "machine updated",
        "destroy": "machine destroyed",
    }
    if kind not in fixed:
        return None
    return ("error" if kind == "start" and event.status == "failed" else "info"), fixed[kind]


def _exit_wording(request: dict[str, Any], status: str) -> tuple[str, str]:
    exit_event = request.get("exit_event") or {}
    code = exit_event.get("exit_code")
    signal_name = exit_event.get("signal_name") or ""
    if exit_event.get("oom_killed"):
        level, message = "error", f"out of memory: the main process was killed (exit code {code})"
    elif signal_name:
        level, message = "warn", f"main process killed by {signal_name} (exit code {code})"
    else:
        level, message = ("info" if code == 0 else "error"), f"main process exited with code {code}"
    if exit_event.get("restarting"):
        message += f"; restarting (restart {int(request.get('restart_count') or 0) + 1})"
    elif status == "stopped":
        message += "; machine stopped"
    return level, message
