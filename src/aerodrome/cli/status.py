"""`aerodrome status`: an app at a glance (its machines by state, volumes and addresses), or, without an app, the
daemon's own `/health` (which needs no token)."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

import typer

from aerodrome.cli.session import Session


def status(
    session: Session,
    app_name: Annotated[str, typer.Option("--app", "-a", envvar="FLY_APP", help="The app (else the daemon).")] = "",
) -> None:
    """An app's machines, volumes and addresses; without --app, whether the daemon and its parts are up."""
    if not app_name:
        health = session.any_client.health()
        parts = ", ".join(f"{name} {state}" for name, state in health.parts.items())
        session.emit(health, f"aerodrome at {session.credentials.api}: {'up' if health.ok else 'down'} ({parts})")
        return
    client = session.client
    found, machines = client.get_app(app_name), client.list_machines(app_name)
    volumes, ips = client.list_volumes(app_name), client.list_ips(app_name)
    states = dict(Counter(m.state for m in machines))

    def show() -> None:
        counted = ", ".join(f"{count} {state}" for state, count in sorted(states.items())) or "no machines"
        session.console.print(f"[bold]{found.name}[/bold]  {found.status}  org {found.organization.slug}: {counted}")
        session.table(
            ("ID", "NAME", "STATE", "REGION", "IMAGE", "VOLUMES", "UPDATED"),
            [
                (m.id, m.name, m.state, m.region, m.config.image, " ".join(x.volume for x in m.config.mounts or []),
                 m.updated_at)
                for m in machines
            ],
        )  # fmt: skip
        session.console.print(f"{len(volumes)} volume(s); addresses: {' '.join(ip.address for ip in ips) or 'none'}")

    summary = {"app": found, "machines": machines, "states": states, "volumes": volumes, "ips": ips}
    session.emit(summary, show)
