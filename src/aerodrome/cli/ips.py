"""`aerodrome ips`: an app's public and private addresses, through GraphQL as flyctl allocates them."""

from __future__ import annotations

from typing import Annotated

import typer

from aerodrome.cli.machines import AppOption
from aerodrome.cli.session import Session, api_command
from aerodrome.client import IPAddress

app = typer.Typer(help="IP addresses: a shared or dedicated IPv4, a public or private (flycast) IPv6.")

RegionOption = Annotated[str, typer.Option("--region", "-r", help="Region (else global).")]


def _allocated(session: Session, ip: IPAddress) -> None:
    session.emit(ip, f"allocated {ip.type} address {ip.address}")


@api_command(app, "allocate-v4")
def allocate_v4(
    session: Session,
    app_name: AppOption,
    shared: Annotated[bool, typer.Option("--shared", help="The edge's shared address (routing by Host).")] = False,
    region: RegionOption = "",
) -> None:
    """Allocate a dedicated IPv4 address (or, with --shared, the shared one)."""
    _allocated(session, session.client.allocate_ip(app_name, "shared_v4" if shared else "v4", region=region))


@api_command(app, "allocate-v6")
def allocate_v6(
    session: Session,
    app_name: AppOption,
    private: Annotated[bool, typer.Option("--private", help="A flycast address (private network).")] = False,
    network: Annotated[str, typer.Option("--network", help="With --private: the network's name.")] = "",
    region: RegionOption = "",
) -> None:
    """Allocate a dedicated IPv6 address (or, with --private, a flycast one)."""
    ip = session.client.allocate_ip(app_name, "private_v6" if private else "v6", region=region, network=network)
    _allocated(session, ip)


@api_command(app, "list")
def list_(session: Session, app_name: AppOption) -> None:
    """The app's addresses."""
    ips = session.client.list_ips(app_name)
    session.emit(
        ips,
        lambda: session.table(
            ("ADDRESS", "TYPE", "REGION", "NETWORK", "CREATED"),
            [(ip.address, ip.type, ip.region, ip.network, ip.created_at) for ip in ips],
            empty="no addresses",
        ),
    )


@api_command(app, "release")
def release(
    session: Session, address: Annotated[str, typer.Argument(help="The address.")], app_name: AppOption
) -> None:
    """Release an address: traffic to it stops at once."""
    session.client.release_ip(app_name, address)
    session.emit({"released": address}, f"released {address}")
