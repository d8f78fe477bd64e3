"""`aerodrome apps`: create, list, status, destroy."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from aerodrome.cli.session import Session, UsageError, api_command

app = typer.Typer(help="Apps: a name, its machines, volumes, addresses and secrets.", no_args_is_help=True)

AppName = Annotated[str, typer.Argument(help="The app's name.")]
OrgOption = Annotated[str, typer.Option("--org", "-o", help="Organisation slug.")]


@api_command(app, "create")
def create(session: Session, name: AppName, org: OrgOption = "personal", network: str = "") -> None:
    """Create an app."""
    created = session.client.create_app(name, org, network)
    session.emit(created, f"created app {created.name} in {created.organization.slug or org}")


@api_command(app, "list")
def list_(session: Session, org: OrgOption = "personal") -> None:
    """List the organisation's apps."""
    apps = session.client.list_apps(org)
    session.emit(
        apps,
        lambda: session.table(
            ("NAME", "ORG", "STATUS", "MACHINES", "VOLUMES"),
            [(a.name, a.organization.slug, a.status, a.machine_count, a.volume_count) for a in apps],
            empty="no apps",
        ),
    )


@api_command(app, "status")
def status(session: Session, name: AppName) -> None:
    """An app and its machines."""
    found = session.client.get_app(name)
    machines = session.client.list_machines(name)

    def show() -> None:
        session.console.print(f"[bold]{found.name}[/bold]  {found.status}  org {found.organization.slug}")
        session.table(
            ("ID", "NAME", "STATE", "REGION", "IMAGE", "UPDATED"),
            [(m.id, m.name, m.state, m.region, m.config.image, m.updated_at) for m in machines],
            empty="no machines",
        )

    session.emit({"app": found, "machines": machines}, show)


@api_command(app, "destroy")
def destroy(
    session: Session,
    name: AppName,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Destroy an app with its machines, volumes and addresses (they go in the background)."""
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"destroying {name} needs --yes when there is no terminal to ask on")
        if not typer.confirm(f"destroy app {name} and everything in it?"):
            raise typer.Exit(1)
    session.client.delete_app(name)
    session.emit({"name": name, "destroying": True}, f"destroying app {name}")
