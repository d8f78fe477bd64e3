"""skopeo, run for the image commands: its output lines fed to a progress bar, its failure as one line (the
message of its last log line), a missing image as `NotFoundError` (exit 3)."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from collections.abc import Sequence

from aerodrome.cli.progress import CopyProgress
from aerodrome.cli.session import UsageError
from aerodrome.client import ApiError, NotFoundError

NOT_FOUND = ("manifest unknown", "name unknown", "not found", "no such file", "may not exist")
LOGRUS_MESSAGE = re.compile(r'msg="((?:[^"\\]|\\.)*)"')


def skopeo(argv: Sequence[str], progress: CopyProgress | None = None, timeout: float = 1800) -> str:
    """Run skopeo; its stdout (each line shown on `progress`), or an `ApiError` with its last line of stderr."""
    try:
        process = subprocess.Popen(
            ["skopeo", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
        )
    except FileNotFoundError:
        raise UsageError("skopeo is not installed (scripts/install-deps.sh)") from None
    lines = []
    with process:
        assert process.stdout is not None and process.stderr is not None
        for line in process.stdout:  # skopeo writes little to stderr: reading it afterwards cannot block it
            lines.append(line)
            if progress is not None:
                progress.line(line)
        errors = process.stderr.read()
    if process.wait(timeout=timeout) != 0:
        last = (errors.strip().splitlines() or ["skopeo failed"])[-1]
        found = LOGRUS_MESSAGE.search(last)  # skopeo's `time=… level=fatal msg="…"`
        message = (found.group(1).replace('\\"', '"') if found else last)[:500]
        kind = NotFoundError if any(word in message.lower() for word in NOT_FOUND) else ApiError
        raise kind(f"skopeo {argv[0]}: {message}")
    return "".join(lines)


def blob_count(source: str, extra: Sequence[str] = ()) -> int:
    """The image's layers and config, for the progress bar (1 when its manifest cannot be read)."""
    with contextlib.suppress(ApiError, ValueError, UsageError):
        manifest = json.loads(skopeo(["inspect", "--raw", *extra, source], timeout=120))
        return len(manifest.get("layers") or []) + 1
    return 1
