"""`aerodrome tokens` and `orgs`. Creating a token or an organisation is the server administrator's act, done on
the data directory (there is no token yet to ask the API with); listing and revoking go through the running
server's API, so that a revoke reaches the process that remembers the tokens it has seen."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from aerodrome.cli.config import Layout, data_dir
from aerodrome.cli.session import Session, api_command

tokens_app = typer.Typer(help="Organisation tokens.", no_args_is_help=True)
orgs_app = typer.Typer(help="Organisations.", no_args_is_help=True)

DataDir = Annotated[
    str | None, typer.Option("--data-dir", help="State directory (default $AERODROME_DATA_DIR or /var/lib/aerodrome).")
]


@tokens_app.command("create")
def tokens_create(
    data_dir_: DataDir = None,
    org: Annotated[str, typer.Option("--org", help="Organisation the token acts for.")] = "personal",
    name: Annotated[str, typer.Option("--name", help="A label for the token.")] = "",
) -> None:
    """Create an organisation token and print it (only the token) on stdout."""

    async def create() -> str:
        from aerodrome.cli.serve import open_store
        from aerodrome.control.auth import Tokens
        from aerodrome.core import SystemClock

        store = await open_store(Layout(data_dir(data_dir_)))
        try:
            return await Tokens(store, SystemClock()).create(org, name)
        finally:
            await store.close()

    typer.echo(asyncio.run(create()))


@api_command(tokens_app, "list")
def tokens_list(
    session: Session,
    org: Annotated[str, typer.Option("--org", help="Organisation (the token's own; default: it).")] = "",
) -> None:
    """List the organisation's tokens: id, name, created, last used (to the minute), revoked. Never a secret."""
    tokens = session.client.list_tokens(org)
    session.emit(
        tokens,
        lambda: session.table(
            ("ID", "NAME", "CREATED", "LAST USED", "REVOKED"),
            [(t.id, t.name, t.created_at, t.last_used_at, t.revoked_at) for t in tokens],
        ),
    )


@api_command(tokens_app, "revoke")
def tokens_revoke(
    session: Session, token_id: Annotated[str, typer.Argument(help="The token's id, as `tokens list` shows it.")]
) -> None:
    """Revoke a token of the organisation: it is refused from its next request."""
    revoked = session.client.revoke_token(token_id)
    session.emit(revoked, f"revoked {revoked.id}")


@orgs_app.command("create")
def orgs_create(slug: str, data_dir_: DataDir = None, name: str = "") -> None:
    """Create an organisation (machines of different organisations cannot reach each other)."""

    async def create() -> None:
        from aerodrome.cli.serve import open_store

        store = await open_store(Layout(data_dir(data_dir_)))
        try:
            await store.ensure_org(slug, name or slug)
        finally:
            await store.close()

    asyncio.run(create())
    typer.echo(slug)


@api_command(orgs_app, "list")
def orgs_list(session: Session) -> None:
    """The organisations this token may act for (an organisation token: its own)."""
    org = session.client.organization()
    session.emit([org], lambda: session.table(("SLUG", "NAME", "TYPE"), [(org.slug, org.name, org.type)]))
