"""`aerodrome mcp`: serve a stdio MCP server over HTTP (`wrap`) and bridge it back to stdio (`proxy`)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import uuid
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from aerodrome.cli.credentials import resolve
from aerodrome.cli.session import reported_errors
from aerodrome.client import (
    Client,
    ClientSettings,
    CreateMachineRequest,
    CreateVolumeRequest,
    Guest,
    Init,
    MachineConfig,
    Mount,
    Port,
    Service,
)
from aerodrome.mcp import BridgeError, BridgeOptions, run_bridge, wrap

__all__ = ["app", "client_config", "launch_app", "machine_config", "resolve_localhost_names"]

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
    resolve_localhost_names()
    try:
        asyncio.run(run_bridge(options))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    except (BridgeError, httpx.HTTPError) as exc:
        typer.echo(f"error waiting for server: {exc}", err=True)
        raise typer.Exit(1) from None


def resolve_localhost_names() -> None:
    """Resolve every `*.localhost` name to loopback in this process, as curl and browsers do (RFC 6761 §6.3).

    The edge serves apps at `http://<app>.localhost:8080/`, but glibc resolves those names only where
    systemd-resolved runs; without this, the URL `launch` prints would not resolve for the proxy."""
    original = socket.getaddrinfo
    if getattr(original, "resolves_localhost", False):
        return

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if isinstance(name, str) and name.rstrip(".").lower().endswith(".localhost"):
            host = "localhost"
        return original(host, *args, **kwargs)

    getaddrinfo.resolves_localhost = True  # type: ignore[attr-defined]
    socket.getaddrinfo = getaddrinfo


# The guide's MCP server: the filesystem server over the volume mounted at /data.
DEFAULT_SERVER = ("npx", "-f", "@modelcontextprotocol/server-filesystem", "/data/")


def machine_config(image: str, command: list[str], force_https: bool = False) -> MachineConfig:
    """The guide's machine config: `command` wrapped by the image's entrypoint, /data on an auto-extending volume,
    and a service on internal port 8080 that starts on the first request and stops when idle.

    The guide sets `force_https` on port 80; `launch` leaves it off by default because the URL it hands to the
    local proxy is plain HTTP on loopback, which a redirect to the edge's own CA would only break."""
    return MachineConfig(
        image=image,
        init=Init(cmd=command),
        guest=Guest(cpu_kind="shared", cpus=1, memory_mb=1024),
        mounts=[Mount(volume="data", path="/data", extend_threshold_percent=80, add_size_gb=1, size_gb_limit=100)],
        services=[
            Service(
                protocol="tcp",
                internal_port=8080,
                autostop="stop",
                autostart=True,
                ports=[
                    Port(port=80, handlers=["http"], force_https=force_https),
                    Port(port=443, handlers=["http", "tls"]),
                ],
            )
        ],
    )


def client_config(app_name: str, url: str, bearer_token: str) -> dict[str, object]:
    """The MCP client configuration (Claude Desktop's `mcpServers` shape) that reaches the app through the proxy."""
    args = ["mcp", "proxy", "--url", url, "--bearer-token", bearer_token]
    return {"mcpServers": {app_name: {"command": "aerodrome", "args": args}}}


def launch_app(
    api: Client, app_name: str, org: str, region: str, image: str, command: list[str], volume_size: int
) -> tuple[str, str]:
    """Run the guide's whole flow for one user: app, IPs, volume, bearer token secret, machine.

    Returns (machine id, bearer token). The machine is created without being started: the edge starts it on its
    first request, as in the guide.
    """
    api.create_app(app_name, org)
    for kind in ("shared_v4", "v6"):
        api.allocate_ip(app_name, kind)
    api.create_volume(app_name, CreateVolumeRequest(name="data", region=region, size_gb=volume_size))
    # As `fly mcp add --bearer-token`: a random token, kept as the secret wrap reads from its environment.
    token = secrets.token_urlsafe(32)
    api.set_secrets(app_name, {"FLY_MCP_BEARER_TOKEN": token})
    request = CreateMachineRequest(region=region, skip_launch=True, config=machine_config(image, command))
    machine = api.create_machine(app_name, request)
    return machine.id, token


@app.command("launch", context_settings={"ignore_unknown_options": True})
def launch_command(
    command: Annotated[
        list[str] | None, typer.Argument(help="the stdio MCP server, after -- (default: filesystem)")
    ] = None,
    api_url: Annotated[str | None, typer.Option("--api", help="Machines API (else as for every command)")] = None,
    token: Annotated[str | None, typer.Option(help="organisation token (else as for every command)")] = None,
    app_name: Annotated[str, typer.Option("--app", help="app name (default: mcp-<random>)")] = "",
    org: Annotated[str, typer.Option(help="organisation slug")] = "personal",
    region: Annotated[str, typer.Option(help="region of the volume and machine")] = "iad",
    image: Annotated[str, typer.Option(help="image with wrap as its entrypoint")] = "flyio/mcp:latest",
    volume_size: Annotated[int, typer.Option(help="size of the /data volume in GB")] = 1,
    edge: Annotated[
        str, typer.Option(help="the edge's URL for apps; {app} is the app name")
    ] = "http://{app}.localhost:8080/",
) -> None:
    """Launch a per-user MCP server the way the Machines guide does, and print the MCP client configuration."""
    name = app_name or f"mcp-{uuid.uuid4().hex[-12:]}"
    with reported_errors():
        credentials = resolve(api_url, token)
        settings = ClientSettings.from_env(credentials.api, credentials.token, env={}, timeout=120.0)
        with Client(settings) as api:
            machine_id, bearer = launch_app(api, name, org, region, image, list(command or DEFAULT_SERVER), volume_size)
    typer.echo(f"launched {name}: machine {machine_id} (starts on its first request)", err=True)
    typer.echo(json.dumps(client_config(name, edge.format(app=name), bearer), indent=2))


if __name__ == "__main__":
    app()
