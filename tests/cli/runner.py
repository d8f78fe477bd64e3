"""The `aerodrome` command run in-process through its Typer entry point, against a real server."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from aerodrome.cli import app

# Only what a test sets reaches the command: none of the host's tokens, addresses or config file.
CLEARED = ("AERODROME_API", "AERODROME_TOKEN", "FLY_API_HOSTNAME", "FLY_API_TOKEN", "FLY_APP", "FLY_FLAPS_BASE_URL")


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.code == 0, f"exit {self.code}: {self.stderr}"
        return json.loads(self.stdout)


@dataclass
class Cli:
    api: str
    token: str
    config: Path

    def run(self, *args: str, input: str | None = None, **env: str) -> Outcome:
        base = dict.fromkeys(CLEARED)
        base.update({"AERODROME_CONFIG": str(self.config), "COLUMNS": "250"})
        base.update({"AERODROME_API": self.api, "AERODROME_TOKEN": self.token})
        base.update(env)
        result = CliRunner().invoke(app, list(args), env=base, input=input)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Outcome(result.exit_code, result.stdout, result.stderr)

    def json(self, *args: str, **env: str) -> Any:
        """The command with `--json` (before a `--`, which ends the options), its output parsed."""
        at = args.index("--") if "--" in args else len(args)
        return self.run(*args[:at], "--json", *args[at:], **env).json()

    def on_terminal(self, *args: str) -> tuple[subprocess.CompletedProcess[bytes], bytes]:
        """`python -m aerodrome ARGS` with stderr on a pseudo-terminal (stdout a pipe): the result, and what the
        terminal was shown."""
        env = {k: v for k, v in os.environ.items() if k not in CLEARED}
        env.update({"AERODROME_API": self.api, "AERODROME_TOKEN": self.token, "AERODROME_CONFIG": str(self.config)})
        controller, terminal = pty.openpty()
        argv = [sys.executable, "-m", "aerodrome", *args]
        try:
            result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=terminal, env=env, timeout=300, check=False)
        finally:
            os.close(terminal)
        shown = b""
        try:
            while chunk := os.read(controller, 65536):
                shown += chunk
        except OSError:  # EIO: the terminal's other end is closed and everything was read
            pass
        finally:
            os.close(controller)
        return result, shown
