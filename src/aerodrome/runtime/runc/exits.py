"""How a machine's main process ended, and the record of it kept beside the machine (never inside it).

The status is its init's, as the daemon reaped it (a shell status: 128+N for a death by signal N, which a
program's own `exit(128+N)` cannot be told from; catatonit passes its program's status on). When there is
none, the init ended while no daemon was its parent: by our SIGKILL after a stop timed out or an OOM kill
(137), or else unknown (-1).
"""

from __future__ import annotations

import signal
from datetime import UTC, datetime

from aerodrome.core import ExitInfo
from aerodrome.runtime.runc.layout import RECORD_ERRORS, MachinePaths, read_json, set_aside, write_json

UNKNOWN_EXIT = -1


def _rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_exit(paths: MachinePaths, code: int | None, *, oom_kills: int, killed: bool, now: float) -> ExitInfo:
    """The ExitInfo of the run that just ended; `killed` when the runtime sent SIGKILL itself."""
    requested = paths.stop_requested.exists()
    if code is None:
        code = 128 + signal.SIGKILL if killed or oom_kills else UNKNOWN_EXIT
    return ExitInfo(
        exit_code=code,
        signal=code - 128 if code > 128 else -1,
        oom_killed=oom_kills > 0,
        requested_stop=requested,
        exited_at=_rfc3339(now),
    )


def record_exit(paths: MachinePaths, info: ExitInfo, *, reported: bool) -> None:
    """Write the exit down: durably until it is reported (only this record holds it), then not (see `write_json`)."""
    write_json(
        paths.last_exit,
        {
            "exit_code": info.exit_code,
            "signal": info.signal,
            "oom_killed": info.oom_killed,
            "requested_stop": info.requested_stop,
            "exited_at": info.exited_at,
            "reported": reported,
        },
        durable=not reported,
    )


def last_exit(paths: MachinePaths) -> tuple[ExitInfo, bool] | None:
    """The last recorded exit and whether it was reported, or None: none recorded, or one that did not read
    (set aside, as if the machine had not run)."""
    try:
        data = read_json(paths.last_exit)
        if data is None:
            return None
        reported = data.pop("reported", False)
        info = ExitInfo(**data)
        if type(reported) is not bool or any(type(getattr(info, f)) is not t for f, t in _EXIT_TYPES.items()):
            raise TypeError("a value is of the wrong type")
    except RECORD_ERRORS as error:
        set_aside(paths.quarantine, paths.dir.name, paths.last_exit, error, then="its last exit is unknown")
        return None
    return info, reported


_EXIT_TYPES = {"exit_code": int, "signal": int, "oom_killed": bool, "requested_stop": bool, "exited_at": str}
