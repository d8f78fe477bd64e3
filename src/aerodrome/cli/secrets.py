"""`aerodrome secrets`: an app's secrets, set from NAME=VALUE (or stdin), listed by digest, unset."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from aerodrome.cli.machine_specs import parse_env
from aerodrome.cli.machines import AppOption
from aerodrome.cli.session import Session, UsageError, api_command

app = typer.Typer(help="Secrets: encrypted at rest, given to machines as environment variables.", no_args_is_help=True)


@api_command(app, "set")
def set_(
    session: Session,
    pairs: Annotated[list[str], typer.Argument(help="NAME=VALUE …; `NAME=-` reads the value from stdin.")],
    app_name: AppOption,
) -> None:
    """Set secrets (one new version for all of them); machines see them from their next start or update."""
    values: dict[str, str | None] = dict(parse_env(pairs, "secret"))
    for name, value in values.items():
        if value == "-":
            values[name] = sys.stdin.read().removesuffix("\n")
    update = session.client.set_secrets(app_name, values)
    session.emit(update, f"set {', '.join(sorted(values))} (version {update.version})")


@api_command(app, "list")
def list_(session: Session, app_name: AppOption) -> None:
    """The app's secrets: names and digests, never values."""
    secrets = session.client.list_secrets(app_name)
    session.emit(
        secrets,
        lambda: session.table(
            ("NAME", "DIGEST", "UPDATED"), [(s.name, s.digest, s.updated_at) for s in secrets], empty="no secrets"
        ),
    )


@api_command(app, "unset")
def unset(
    session: Session,
    names: Annotated[list[str], typer.Argument(help="The secrets' names.")],
    app_name: AppOption,
) -> None:
    """Remove secrets (all in one new version); a name the app does not have is an error, and nothing changes."""
    known = {s.name for s in session.client.list_secrets(app_name)}
    unknown = sorted(set(names) - known)
    if unknown:
        raise UsageError(f"app {app_name} has no secret {', '.join(unknown)}")
    update = session.client.set_secrets(app_name, dict.fromkeys(names))
    session.emit(update, f"unset {', '.join(sorted(set(names)))} (version {update.version})")
