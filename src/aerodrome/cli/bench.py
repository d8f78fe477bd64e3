"""`aerodrome bench`: every benchmark against a fresh `aerodrome serve` on free loopback ports, in a temporary data
directory, each figure beside its floor measured in the same run; a table, `results.json` and PNG plots."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console

from aerodrome.cli.daemon import Daemon, exit_on_sigterm

VOLUME_UNIT_MB = 16


def bench(
    quick: Annotated[bool, typer.Option("--quick", help="Fewer rounds and smaller steps: under 3 minutes.")] = False,
    only: Annotated[str, typer.Option("--only", help="Comma-separated groups (default: all).")] = "",
    out: Annotated[Path, typer.Option("--out", help="Where results.json and the plots go.")] = Path("bench-results"),
    markdown: Annotated[bool, typer.Option("--markdown", help="Also print the table as Markdown.")] = False,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the temporary data directory and its log.")] = False,
) -> None:
    """Benchmark this host: runtime (resume, start, create, update), api, proxy, volumes, scale (needs root, as
    `serve` does)."""
    from aerodrome import bench as suite

    groups = tuple(g.strip() for g in only.split(",") if g.strip()) or suite.GROUPS
    unknown = [g for g in groups if g not in suite.GROUPS]
    if unknown:
        choices = ", ".join(suite.GROUPS)
        typer.echo(f"aerodrome bench: unknown group {', '.join(unknown)} (choose from {choices})", err=True)
        raise typer.Exit(2)
    if os.geteuid() != 0:
        typer.echo("aerodrome bench: needs root (it runs `aerodrome serve` and machines)", err=True)
        raise typer.Exit(2)
    console = Console(width=None if sys.stdout.isatty() else 160)
    out.mkdir(parents=True, exist_ok=True)
    plan = suite.Plan.quick(VOLUME_UNIT_MB) if quick else suite.Plan.full(VOLUME_UNIT_MB)
    exit_on_sigterm()
    workdir = Path(tempfile.mkdtemp(prefix="aerodrome-bench-"))
    daemon = Daemon(workdir, volume_unit_mb=VOLUME_UNIT_MB)
    began = time.monotonic()
    try:
        daemon.start()
        results = suite.run(daemon, workdir, plan, groups, lambda line: console.print(f"[dim]{line}[/dim]"))
    except Exception:
        console.print(f"[red]aerodrome bench failed; the daemon's log ends:[/red]\n{daemon.log_tail()}")
        raise
    finally:
        cleared = _clear(daemon)
        daemon.stop()
        if keep or not cleared:
            # never remove a data directory whose machines may still run: a later daemon on it takes them down
            console.print(f"[yellow]kept {workdir}[/yellow] (its log is serve.log)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    caption = suite.caption()
    suite.draw(results, out, caption)
    path = suite.write_json(results, out, quick, groups)
    console.print(suite.table(results.figures, f"aerodrome bench{' --quick' if quick else ''} on {caption}", not quick))
    if steps := suite.order(results.figures):
        console.print(f"measured order: {suite.describe_order(steps)}", highlight=False)
    if markdown:
        typer.echo(suite.markdown(results.figures))  # unwrapped, whatever the terminal width
    console.print(f"{time.monotonic() - began:.0f} s; {path} and {', '.join(results.plots) or 'no plots'} in {out}")


def _clear(daemon: Daemon) -> bool:
    """Take down every app the run made (a failed group leaves its own); whether none is left."""
    from aerodrome.bench import delete_every_app

    if not daemon.alive():
        return False
    try:
        with daemon.client() as api:
            return delete_every_app(api)
    except httpx.HTTPError:
        return False
