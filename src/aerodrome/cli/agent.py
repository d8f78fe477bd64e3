"""`aerodrome agent`: one host's agent alone, serving the host agent protocol to control planes.

It owns the host's machines, volumes and images (the in-process agent `serve` runs inside itself) and answers
on HOST:PORT with the bearer token of DIR/agent.token, made on first start. The listener is plain HTTP, so it
must be a loopback address: the token would cross any other network in clear (mutual TLS comes with agents on
other hosts).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import ipaddress
import logging
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from aerodrome.cli.config import MAX_NETNS_POOL, NETNS_POOL, data_dir, missing_requirements, raise_fd_limit
from aerodrome.cli.tokens import DataDir
from aerodrome.core import AerodromeError

# For the command's own tests only: "module:function" builds the agent instead of the in-process one (which
# needs root and the host's tools), with open_local_agent's signature.
AGENT_FACTORY_ENV = "AERODROME_TEST_AGENT_FACTORY"
DEFAULT_LISTEN = "127.0.0.1:4290"
TOKEN_FILE = "agent.token"

AgentFactory = Callable[..., Any]


def agent(
    data_dir_: DataDir = None,
    listen: Annotated[
        str, typer.Option("--listen", help="HOST:PORT the agent answers on; a loopback address (plain HTTP).")
    ] = DEFAULT_LISTEN,
    name: Annotated[str, typer.Option("--name", help="The host's name, as control planes list it.")] = "",
    region: Annotated[str, typer.Option("--region", help="The region this host is in.")] = "iad",
    registry: Annotated[
        str, typer.Option("--registry", help="The embedded registry (serve's --registry) machines' images come from.")
    ] = "127.0.0.1:5000",
    registry_keys: Annotated[
        Path | None,
        typer.Option("--registry-keys", help="The control plane's DATA/registry, whose key signs pulls from it."),
    ] = None,
    machine_ipv4_pool: Annotated[
        str, typer.Option("--machine-ipv4-pool", help="Private IPv4 range for machines (a subnet per organisation).")
    ] = "172.30.0.0/16",
    egress: Annotated[
        bool, typer.Option("--egress/--no-egress", help="Let machines open connections out of the host (NAT).")
    ] = True,
    netns_pool: Annotated[
        int,
        typer.Option(
            "--netns-pool",
            min=0,
            max=MAX_NETNS_POOL,
            help="Prepared network namespaces kept per organisation starting machines (0: none).",
        ),
    ] = NETNS_POOL,
) -> None:
    """Run this host's agent alone: control planes drive it with `serve --agent URL --agent-token-file FILE`."""
    host, port = parse_listen(listen)
    # the runtime's and the server's warnings (an exit not torn down, a machine not re-adopted) go to stderr
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = data_dir(data_dir_)
    factory = agent_factory(root)
    from aerodrome.agent import ensure_token

    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    token_path = root / TOKEN_FILE
    try:
        token = ensure_token(token_path)
        listener = bind(host, port)
    except (OSError, AerodromeError) as exc:
        typer.echo(f"aerodrome: {exc}", err=True)
        raise typer.Exit(2) from None
    shown = f"[{host}]" if ":" in host else host
    typer.echo(
        f"aerodrome agent {name or socket.gethostname()} answers on http://{shown}:{listener.getsockname()[1]}"
        f" (token: {token_path})",
        err=True,
    )
    try:
        host_settings: dict[str, Any] = {
            "registry": registry,
            "registry_keys": registry_keys or root / "registry",
            "machine_ipv4_pool": machine_ipv4_pool,
            "egress": egress,
            "netns_pool": netns_pool,
        }
        named = {"name": name or socket.gethostname(), "region": region}
        asyncio.run(run_agent(factory, root, token, listener, **named, **host_settings))
    finally:
        listener.close()


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise typer.BadParameter(f"{value!r}: use HOST:PORT, e.g. {DEFAULT_LISTEN}", param_hint="--listen")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise typer.BadParameter(
            f"{value!r} is not a loopback address: the agent speaks plain HTTP with a bearer token, which must not "
            "cross a network (agents on other hosts need mutual TLS, not built yet)",
            param_hint="--listen",
        )
    return host, int(port)


def parse_agent_url(value: str) -> str:
    """`serve --agent`'s URL: http://HOST:PORT of an agent, without a path."""
    scheme, sep, rest = value.partition("://")
    host, _, port = rest.rstrip("/").rpartition(":")
    if scheme != "http" or not sep or not host or not port.isdigit() or "/" in rest.rstrip("/"):
        raise typer.BadParameter(f"{value!r}: use http://HOST:PORT, e.g. http://{DEFAULT_LISTEN}", param_hint="--agent")
    return value.rstrip("/")


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on connections whose socket says so, and a listener made
    # with proto 0 hands that on to every accepted one (measured: 45 ms a call, Nagle against delayed ACKs)
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return listener


def agent_factory(root: Path) -> AgentFactory:
    """The in-process agent's factory, after the host checks `serve` makes; or the tests' (AGENT_FACTORY_ENV)."""
    override = os.environ.get(AGENT_FACTORY_ENV)
    if override:
        module, _, function = override.partition(":")
        return getattr(importlib.import_module(module), function)  # type: ignore[no-any-return]
    problem = missing_requirements()
    if problem:
        typer.echo(f"aerodrome: {problem}", err=True)
        raise typer.Exit(2)
    from aerodrome.runtime import check_user_namespaces, claim_subordinate_ids

    try:
        check_user_namespaces(root)
        claim_subordinate_ids()
    except OSError as exc:
        typer.echo(f"aerodrome: {exc}", err=True)
        raise typer.Exit(2) from None
    factory = getattr(importlib.import_module("aerodrome.agent"), "open_local_agent", None)
    if factory is None:
        typer.echo("aerodrome: this build has no in-process host agent (aerodrome.agent.open_local_agent)", err=True)
        raise typer.Exit(2)
    return factory  # type: ignore[no-any-return]


async def run_agent(
    factory: AgentFactory, root: Path, token: str, listener: socket.socket, *, name: str, region: str, **host: Any
) -> None:
    from aerodrome.agent import agent_server

    os.umask(0o077)  # nothing the agent writes is for other users of the host
    raise_fd_limit()
    opened = factory(root, name=name, region=region, **host)
    host_agent = await opened if inspect.isawaitable(opened) else opened
    try:
        # uvicorn raises the signal that stopped it again once shut down: ignored, so the agent is closed and
        # the command exits 0 (as serve does)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: None)
        await agent_server(host_agent, token).serve(sockets=[listener])
    finally:
        await host_agent.close()  # machines keep running, re-adopted at the next start
