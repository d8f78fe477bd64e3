"""`aerodrome tokens` and `orgs`, through the running server's API: a token makes more tokens of its organisation
(`POST /v1/tokens`) and new organisations (GraphQL `createOrganization`, which answers the new one's first token).

The one act without a token is the very first token of a fresh host: `tokens create --data-dir DIR` (or with no
token at all) writes it into the data directory's database, which is root's, so it is run with sudo. `orgs create
--data-dir DIR` is the same administrator's form.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer

from aerodrome.cli.config import Layout, data_dir
from aerodrome.cli.session import Session, UsageError, api_command

tokens_app = typer.Typer(help="Organisation tokens.", no_args_is_help=True)
orgs_app = typer.Typer(help="Organisations.", no_args_is_help=True)

DataDir = Annotated[
    str | None,
    typer.Option(
        "--data-dir", help="Write to serve's state directory instead of the API (the first token of a fresh host)."
    ),
]


def _on_data_dir(root: Path, org: str, name: str) -> str:
    async def create() -> str:
        from aerodrome.cli.serve import open_store
        from aerodrome.control.auth import Tokens
        from aerodrome.core import SystemClock

        store = await open_store(Layout(root))
        try:
            return await Tokens(store, SystemClock()).create(org, name)
        finally:
            await store.close()

    try:
        if root.exists() and not os.access(root, os.W_OK):
            raise PermissionError(root)
        return asyncio.run(create())
    except PermissionError:
        raise UsageError(f"{root} is root's: make the first token with `sudo aerodrome tokens create`") from None


@api_command(tokens_app, "create")
def tokens_create(
    session: Session,
    data_dir_: DataDir = None,
    org: Annotated[str, typer.Option("--org", help="Organisation the token acts for (default: the caller's).")] = "",
    name: Annotated[str, typer.Option("--name", help="A label for the token.")] = "",
) -> None:
    """Create an organisation token and print it (only the token, but with --json) on stdout."""
    if data_dir_ is not None or not session.credentials.token:
        secret = _on_data_dir(data_dir(data_dir_), org or "personal", name)
        session.emit({"token": secret, "org_slug": org or "personal", "name": name}, secret)
        return
    created = session.client.create_token(name, org)
    session.emit(created, created.token)


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


@api_command(orgs_app, "create")
def orgs_create(
    session: Session,
    slug: Annotated[str, typer.Argument(help="The organisation's slug: lower-case letters, digits and dashes.")],
    data_dir_: DataDir = None,
    name: Annotated[str, typer.Option("--name", help="Its name (default: the slug).")] = "",
) -> None:
    """Create an organisation (machines of different organisations cannot reach each other) and print its first
    token (with --data-dir: only the slug, as the administrator's form on the data directory)."""
    if data_dir_ is not None:
        _org_on_data_dir(data_dir(data_dir_), slug, name or slug)
        session.emit({"slug": slug}, slug)
        return
    created = session.client.create_organization(name or slug, slug)
    session.emit(created, created.token)


def _org_on_data_dir(root: Path, slug: str, name: str) -> None:
    async def create() -> None:
        from aerodrome.cli.serve import open_store

        store = await open_store(Layout(root))
        try:
            await store.ensure_org(slug, name)
        finally:
            await store.close()

    asyncio.run(create())


@api_command(orgs_app, "list")
def orgs_list(session: Session) -> None:
    """The organisations this token may act for (an organisation token: its own)."""
    org = session.client.organization()
    session.emit([org], lambda: session.table(("SLUG", "NAME", "TYPE"), [(org.slug, org.name, org.type)]))
