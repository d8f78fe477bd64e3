"""`aerodrome logs`: an app's log lines, every machine's (or one's), printed as flyctl prints them; `--follow`
keeps polling for new ones, as flyctl's logs poller does."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

import typer

from aerodrome.cli.machines import AppOption
from aerodrome.cli.session import Session, UsageError
from aerodrome.client import LogEntry
from aerodrome.core import AerodromeError, parse_duration

MachineOption = Annotated[str, typer.Option("--machine", "-i", "--instance", help="Only this machine's lines.")]
RegionOption = Annotated[str, typer.Option("--region", "-r", help="Only this region's lines.")]
FollowOption = Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until interrupted.")]
SinceOption = Annotated[str, typer.Option("--since", help="Only lines from this long ago on, e.g. 10m, 2h.")]


def _cutoff(since: str) -> str:
    """The RFC 3339 time `since` (a Go duration) ago; lines' timestamps compare as strings."""
    try:
        seconds = parse_duration(since, field="--since", maximum=366 * 86400.0)
    except AerodromeError as exc:
        raise UsageError(str(exc)) from None
    return datetime.fromtimestamp(time.time() - seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def _entries(
    session: Session, app_name: str, machine: str, region: str, since: str, follow: bool
) -> Iterator[LogEntry]:
    client = session.client
    start = "0" if since else ""  # --since reads from the oldest line kept; otherwise the newest lines
    if follow:
        yield from client.follow_logs(app_name, instance=machine, region=region, next_token=start)
        return
    token = start
    while True:
        page = client.app_logs(app_name, next_token=token, instance=machine, region=region)
        yield from page.entries
        if not page.entries or page.next_token == token:
            return
        token = page.next_token


def logs(
    session: Session,
    app_name: AppOption,
    machine: MachineOption = "",
    region: RegionOption = "",
    follow: FollowOption = False,
    since: SinceOption = "",
) -> None:
    """The app's log lines: its machines' output and aerodrome's own lines about them (start, exit, restart)."""
    cutoff = _cutoff(since) if since else ""
    try:
        for entry in _entries(session, app_name, machine, region, since, follow):
            if cutoff and entry.timestamp < cutoff:
                continue
            typer.echo(json.dumps(entry.model_dump(mode="json")) if session.json else entry.line())
    except KeyboardInterrupt:
        return
