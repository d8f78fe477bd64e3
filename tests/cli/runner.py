"""The `aerodrome` command run in-process through its Typer entry point, against a real server."""

from __future__ import annotations

import json
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
