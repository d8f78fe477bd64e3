"""`aerodrome doctor`: prove on this host that a daemon killed at any durable step loses nothing and leaks nothing,
and that hostile inputs are refused, against a fresh `aerodrome serve` in a temporary data directory."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from aerodrome.cli.daemon import Daemon, exit_on_sigterm
from aerodrome.cli.killcases import Report
from aerodrome.cli.killsteps import Campaign
from aerodrome.core import FAULT_STEPS

#: One step of each operation, for `--quick`: the ones where the database and the host disagree the longest.
QUICK_STEPS = (
    "image.pull.unpacked",
    "machine.create.runtime_created",
    "runtime.start.runc_created",
    "machine.start.runtime_started",
    "machine.stop.stopping",
    "machine.suspend.runtime_frozen",
    "machine.update.runtime_created",
    "machine.destroy.runtime_destroyed",
    "volume.create.image_built",
    "volume.extend.resized",
    "volume.snapshot.copied",
    "app.delete.machines_destroyed",
)


def doctor(
    quick: Annotated[bool, typer.Option("--quick", help="One step of each operation instead of every step.")] = False,
    steps: Annotated[str, typer.Option("--steps", help="Comma-separated steps to kill at (default: all).")] = "",
    json_: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the temporary data directory and its log.")] = False,
) -> None:
    """Kill a fresh daemon at every durable step of every operation, send it hostile inputs, and report what was
    lost, leaked or answered with a 5xx (needs root, as `serve` does; it uses free loopback ports)."""
    if os.geteuid() != 0:
        typer.echo("aerodrome doctor: needs root (it runs `aerodrome serve` and machines)", err=True)
        raise typer.Exit(2)
    chosen = _steps(quick, steps)
    exit_on_sigterm()
    workdir = Path(tempfile.mkdtemp(prefix="aerodrome-doctor-"))
    daemon = Daemon(workdir)
    started = time.monotonic()
    try:
        report = Campaign(daemon, chosen).run(hostile=True)
    finally:
        # nothing is removed while mounted: a directory something of the run is left on stays, and is named
        if not keep and (left := daemon.remove(daemon.machine_ids())):
            typer.echo(f"aerodrome doctor: {workdir} is kept, the host still has: {'; '.join(left)}", err=True)
    figures = _figures(report, time.monotonic() - started, workdir if keep else None)
    if json_:
        typer.echo(json.dumps(figures, indent=2))
    else:
        _print(figures)
    if report.failures:
        raise typer.Exit(1)


def _steps(quick: bool, steps: str) -> list[str]:
    chosen = [s.strip() for s in steps.split(",") if s.strip()] or list(QUICK_STEPS if quick else FAULT_STEPS)
    unknown = [s for s in chosen if s not in FAULT_STEPS]
    if unknown:
        typer.echo(f"aerodrome doctor: unknown steps {', '.join(unknown)}; known: {', '.join(FAULT_STEPS)}", err=True)
        raise typer.Exit(2)
    return chosen


def _figures(report: Report, seconds: float, kept: Path | None) -> dict[str, object]:
    return {
        "steps": len(report.outcomes),
        "faults_injected": report.faults,
        "operations": report.operations,
        "requests": report.requests,
        "hostile_inputs": report.inputs,
        "lost": len(report.lost),
        "leaked": len(report.leaked),
        "server_errors": len(report.server_errors),
        "failures": report.failures,
        "seconds": round(seconds, 1),
        "ok": not report.failures,
        **({"data_dir": str(kept)} if kept else {}),
    }


def _print(figures: dict[str, object]) -> None:
    table = Table(title="aerodrome doctor")
    table.add_column("check")
    table.add_column("figure", justify="right")
    for label, key in [
        ("steps tried", "steps"),
        ("faults injected (SIGKILL at a step)", "faults_injected"),
        ("operations run", "operations"),
        ("requests sent", "requests"),
        ("hostile inputs tried", "hostile_inputs"),
        ("lost (acknowledged, then gone)", "lost"),
        ("leaked (left on the host)", "leaked"),
        ("5xx answers", "server_errors"),
        ("seconds", "seconds"),
    ]:
        table.add_row(label, str(figures[key]))
    failures = figures["failures"]
    assert isinstance(failures, list)
    table.add_row("result", "[green]ok[/green]" if not failures else f"[red]{len(failures)} failed[/red]")
    console = Console()
    console.print(table)
    for failure in failures:
        console.print(f"✗ {failure}", style="red", highlight=False, markup=False)
