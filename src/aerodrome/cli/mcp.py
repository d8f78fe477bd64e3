"""`aerodrome mcp`: serve a stdio MCP server over HTTP (`wrap`) and bridge it back to stdio (`proxy`)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import httpx
import typer

from aerodrome.mcp import BridgeError, BridgeOptions, run_bridge, wrap

__all__ = ["app"]

app = typer.Typer(help="Serve stdio MCP servers over HTTP and bridge them back to stdio clients.")


@app.command("wrap", context_settings={"ignore_unknown_options": True})
def wrap_command(
    command: Annotated[list[str], typer.Argument(help="the stdio MCP program and its arguments, after --")],
    port: Annotated[int, typer.Option("--port", "-p", help="port to listen on (0: any free port)")] = 8080,
    host: Annotated[str, typer.Option(help="address to bind (default: every interface)")] = "",
    bearer_token: Annotated[str, typer.Option(help="require this bearer token (env FLY_MCP_BEARER_TOKEN)")] = "",
    user: Annotated[str, typer.Option(help="require HTTP basic auth with this user (env FLY_MCP_USER)")] = "",
    password: Annotated[str, typer.Option(help="the basic auth password (env FLY_MCP_PASSWORD)")] = "",
    private: Annotated[bool, typer.Option(help="refuse requests from outside the private network")] = False,
    session_timeout: Annotated[float, typer.Option(help="seconds before an idle Streamable HTTP session ends")] = 300,
    max_sessions: Annotated[int, typer.Option(help="most concurrent Streamable HTTP sessions")] = 64,
    spare_sessions: Annotated[int, typer.Option(help="warm programs kept ready for new sessions")] = 1,
) -> None:
    """Serve a stdio MCP program over HTTP, wire-compatible with `fly mcp wrap`, plus Streamable HTTP."""
    argv = [f"--port={port}", f"--host={host}", f"--session-timeout={session_timeout}"]
    argv += [f"--max-sessions={max_sessions}", f"--spare-sessions={spare_sessions}"]
    argv += [f"--bearer-token={bearer_token}", f"--user={user}", f"--password={password}"]
    argv += ["--private"] * private
    raise typer.Exit(wrap.main([*argv, "--", *command]))


@app.command("script")
def script_command() -> None:
    """Print the path of wrap.py, the single stdlib-only file an image build copies in to run `wrap`."""
    typer.echo(Path(wrap.__file__).resolve())


@app.command("proxy")
def proxy_command(
    url: Annotated[str, typer.Option(help="URL of the wrapped MCP server")],
    bearer_token: Annotated[str, typer.Option(help="bearer token to send")] = "",
    user: Annotated[str, typer.Option(help="HTTP basic auth user")] = "",
    password: Annotated[str, typer.Option(help="HTTP basic auth password")] = "",
    instance: Annotated[str, typer.Option(help="machine id to pin requests to (Fly-Force-Instance-Id)")] = "",
    stream: Annotated[bool, typer.Option("--stream", help="speak Streamable HTTP instead of wrap's passthru")] = False,
    reconnect_interval: Annotated[float, typer.Option(help="least seconds between GET reconnects")] = 10.0,
) -> None:
    """Bridge stdio to a remote MCP server, like `fly mcp proxy`; a desktop MCP client launches this."""
    options = BridgeOptions(
        url=url,
        bearer_token=bearer_token or os.environ.get("FLY_MCP_BEARER_TOKEN", ""),
        user=user,
        password=password,
        instance=instance,
        stream=stream,
        reconnect_interval=reconnect_interval,
    )
    try:
        asyncio.run(run_bridge(options))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    except (BridgeError, httpx.HTTPError) as exc:
        typer.echo(f"error waiting for server: {exc}", err=True)
        raise typer.Exit(1) from None


if __name__ == "__main__":
    app()
