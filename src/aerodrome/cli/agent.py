"""`aerodrome agent`: one host's agent alone, serving the host agent protocol to control planes.

It owns the host's machines, volumes and images (the in-process agent `serve` runs inside itself) and answers
on HOST:PORT. Either plain HTTP with the bearer token of DIR/agent.token, made on first start, which must then
be a loopback address (the token would cross any other network in clear); or mutual TLS with a certificate of
the cluster CA (`--cluster-ca FILE`), on any address.
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
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aerodrome.cli.config import MAX_NETNS_POOL, NETNS_POOL, data_dir, missing_requirements, raise_fd_limit
from aerodrome.cli.tokens import DataDir
from aerodrome.core import AerodromeError

if TYPE_CHECKING:
    from aerodrome.cli.register import Registration

# For the command's own tests only: "module:function" builds the agent instead of the in-process one (which
# needs root and the host's tools), with open_local_agent's signature.
AGENT_FACTORY_ENV = "AERODROME_TEST_AGENT_FACTORY"
DEFAULT_LISTEN = "127.0.0.1:4290"
TOKEN_FILE = "agent.token"

AgentFactory = Callable[..., Any]


def agent(
    data_dir_: DataDir = None,
    listen: Annotated[
        str, typer.Option("--listen", help="HOST:PORT the agent answers on; a loopback one without TLS.")
    ] = DEFAULT_LISTEN,
    cluster_ca: Annotated[
        Path | None,
        typer.Option("--cluster-ca", help="The cluster CA's file (made if missing): answer over mutual TLS."),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option("--database", help="postgresql://… the control planes share: register this host there (TLS)."),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="HOST:PORT control planes reach this agent at (default --listen), named in its certificate.",
        ),
    ] = None,
    heartbeat_interval: Annotated[
        float, typer.Option("--heartbeat-interval", min=0.1, help="Seconds between heartbeats (--database).")
    ] = 2.0,
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
    peer: Annotated[
        list[str] | None,
        typer.Option(
            "--peer",
            help="Another host of the private network: UNDERLAY_IPV6=ITS_MACHINE_POOL, or UNDERLAY_IPV6 alone "
            "for a control plane's host without machines (repeat for each).",
        ),
    ] = None,
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
    host, port = parse_listen(listen, tls=cluster_ca is not None or database is not None)
    # the runtime's and the server's warnings (an exit not torn down, a machine not re-adopted) go to stderr
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = data_dir(data_dir_)
    factory = agent_factory(root)
    from aerodrome.agent import ensure_token

    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    token_path = root / TOKEN_FILE
    name = name or socket.gethostname()
    try:
        plain = cluster_ca is None and database is None
        token = ensure_token(token_path) if plain else None
        tls = agent_tls(cluster_ca, name, host, address) if cluster_ca is not None else None
        listener = bind(host, port)
    except (OSError, AerodromeError) as exc:
        typer.echo(f"aerodrome: {exc}", err=True)
        raise typer.Exit(2) from None
    shown = f"[{host}]" if ":" in host else host
    registration = None
    if database is not None:
        from aerodrome.cli.register import Registration

        reached = address or f"{shown}:{listener.getsockname()[1]}"
        registration = Registration(database, root, reached, interval=heartbeat_interval)
    scheme, credential = ("http", f"token: {token_path}") if plain else ("https", "mutual TLS")
    typer.echo(
        f"aerodrome agent {name} answers on {scheme}://{shown}:{listener.getsockname()[1]} ({credential})", err=True
    )
    try:
        host_settings: dict[str, Any] = {
            "registry": registry,
            "registry_keys": registry_keys or root / "registry",
            "machine_ipv4_pool": machine_ipv4_pool,
            "egress": egress,
            "netns_pool": netns_pool,
        }
        if peer:  # only then: the tests' agent factories take no peers
            host_settings["peers"] = check_peer_flags(peer, machine_ipv4_pool)
        named = {"name": name, "region": region}
        run = run_agent(factory, root, token, listener, tls=tls, registration=registration, **named, **host_settings)
        asyncio.run(run)
    finally:
        listener.close()


def agent_tls(ca_file: Path, name: str, host: str, address: str | None = None) -> ssl.SSLContext:
    """The agent's mutual TLS: a certificate for its name, its listen address and `--address`, issued by the
    cluster CA's file."""
    from aerodrome.agent import Identity, read_ca_file

    hosts = [host] if host not in ("0.0.0.0", "::") else []
    if address:
        hosts.append(address.rpartition(":")[0].strip("[]"))
    addresses = tuple(dict.fromkeys(h for h in hosts if h))
    return Identity.agent(read_ca_file(ca_file, create=True), name, addresses).server_context()


def parse_listen(value: str, *, tls: bool = False) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise typer.BadParameter(f"{value!r}: use HOST:PORT, e.g. {DEFAULT_LISTEN}", param_hint="--listen")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not tls:
        raise typer.BadParameter(
            f"{value!r} is not a loopback address: without --cluster-ca the agent speaks plain HTTP with a bearer "
            "token, which must not cross a network (give --cluster-ca FILE for mutual TLS)",
            param_hint="--listen",
        )
    return host, int(port)


def check_peer_flags(values: list[str], pool4: str) -> list[str]:
    """`--peer`s that parse, with pools apart from each other's and from this host's."""
    from aerodrome.runtime import check_peers, parse_peer

    try:
        peers = [parse_peer(value) for value in values]
        check_peers(pool4, peers)
        return [str(peer) for peer in peers]
    except (AerodromeError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--peer") from None


def parse_agent_url(value: str) -> str:
    """`serve --agent`'s URL: http://HOST:PORT (token) or https://HOST:PORT (mutual TLS) of an agent, no path."""
    scheme, sep, rest = value.partition("://")
    host, _, port = rest.rstrip("/").rpartition(":")
    if scheme not in ("http", "https") or not sep or not host or not port.isdigit() or "/" in rest.rstrip("/"):
        raise typer.BadParameter(
            f"{value!r}: use http://HOST:PORT (https:// for mutual TLS), e.g. http://{DEFAULT_LISTEN}",
            param_hint="--agent",
        )
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
    factory: AgentFactory,
    root: Path,
    token: str | None,
    listener: socket.socket,
    *,
    name: str,
    region: str,
    tls: ssl.SSLContext | None = None,
    registration: Registration | None = None,
    **host: Any,
) -> None:
    from aerodrome.agent import agent_server

    os.umask(0o077)  # nothing the agent writes is for other users of the host
    raise_fd_limit()
    opened = factory(root, name=name, region=region, **host)
    host_agent = await opened if inspect.isawaitable(opened) else opened
    try:
        if registration is not None:
            tls = await registration.start(host_agent)
        # uvicorn raises the signal that stopped it again once shut down: ignored, so the agent is closed and
        # the command exits 0 (as serve does)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: None)
        await agent_server(host_agent, token, tls=tls).serve(sockets=[listener])
    finally:
        if registration is not None:
            await registration.close()
        await host_agent.close()  # machines keep running, re-adopted at the next start
