"""Queries for organisations, tokens and apps."""

from __future__ import annotations

import secrets as random_source

from sqlalchemy import Connection, bindparam, delete, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from aerodrome.core import AlreadyExistsError, App, MachineState, NotFoundError, Organization, Token
from aerodrome.store import logs, mapping
from aerodrome.store.schema import (
    apps,
    ip_addresses,
    machine_events,
    machine_versions,
    machines,
    organizations,
    secrets,
    tokens,
    volume_snapshots,
    volumes,
)

DESTROYED_VOLUME_STATES = ("destroyed",)
_ORG_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def get_org(conn: Connection, slug: str) -> Organization | None:
    row = conn.execute(select(organizations).where(organizations.c.slug == slug)).first()
    return None if row is None else mapping.org_from_row(row)


def ensure_org(conn: Connection, slug: str, name: str) -> Organization:
    existing = get_org(conn, slug)
    if existing is not None:
        return existing
    org_id = "".join(random_source.choice(_ORG_ID_ALPHABET) for _ in range(12))
    conn.execute(insert(organizations).values(id=org_id, slug=slug, name=name))
    created = get_org(conn, slug)
    assert created is not None  # inserted just above, in this transaction
    return created


def list_orgs(conn: Connection) -> list[Organization]:
    rows = conn.execute(select(organizations).order_by(organizations.c.slug))
    return [mapping.org_from_row(row) for row in rows]


def add_token(conn: Connection, token: Token, secret_hash: str) -> None:
    if get_org(conn, token.org_slug) is None:
        raise NotFoundError(f"organization {token.org_slug} not found")
    conn.execute(
        insert(tokens).values(
            id=token.id,
            org_slug=token.org_slug,
            name=token.name,
            secret_hash=secret_hash,
            created_at=token.created_at,
            app_name=token.app_name,
            expires_at=token.expires_at,
        )
    )


def find_token(conn: Connection, secret_hash: str) -> Token | None:
    row = conn.execute(_TOKEN_BY_HASH, {"secret_hash": secret_hash}).first()
    return None if row is None else mapping.token_from_row(row)


def list_tokens(conn: Connection, org_slug: str) -> list[Token]:
    query = select(tokens).where(tokens.c.org_slug == org_slug).order_by(tokens.c.created_at, tokens.c.id)
    return [mapping.token_from_row(row) for row in conn.execute(query)]


def revoke_token(conn: Connection, org_slug: str, token_id: str, at: str) -> Token | None:
    mine = (tokens.c.id == token_id) & (tokens.c.org_slug == org_slug)
    conn.execute(update(tokens).where(mine, tokens.c.revoked_at.is_(None)).values(revoked_at=at))
    row = conn.execute(select(tokens).where(mine)).first()
    return None if row is None else mapping.token_from_row(row)


def touch_tokens(conn: Connection, used: dict[str, str]) -> None:
    if used:
        statement = update(tokens).where(tokens.c.id == bindparam("token_id")).values(last_used_at=bindparam("at"))
        conn.execute(statement, [{"token_id": token_id, "at": at} for token_id, at in used.items()])


def add_app(conn: Connection, app: App) -> None:
    if conn.execute(select(exists().where(apps.c.name == app.name))).scalar():
        raise AlreadyExistsError(f"app name {app.name!r} is already taken")
    if get_org(conn, app.org_slug) is None:
        raise NotFoundError(f"organization {app.org_slug} not found")
    try:
        conn.execute(insert(apps).values(**mapping.app_to_row(app), secrets_version=0))
    except IntegrityError as exc:  # a concurrent writer on an engine that does not serialise (PostgreSQL)
        raise AlreadyExistsError(f"app name {app.name!r} is already taken") from exc


_APP_BY_NAME = select(apps).where(apps.c.name == bindparam("name"))
_TOKEN_BY_HASH = select(tokens).where(tokens.c.secret_hash == bindparam("secret_hash"))


def get_app(conn: Connection, name: str) -> App | None:
    row = conn.execute(_APP_BY_NAME, {"name": name}).first()
    return None if row is None else mapping.app_from_row(row)


def list_apps(conn: Connection, org_slug: str | None) -> list[App]:
    query = select(apps).order_by(apps.c.name)
    if org_slug is not None:
        query = query.where(apps.c.org_slug == org_slug)
    return [mapping.app_from_row(row) for row in conn.execute(query)]


def set_app_status(conn: Connection, name: str, status: str) -> None:
    if conn.execute(update(apps).where(apps.c.name == name).values(status=status)).rowcount == 0:
        raise NotFoundError(f"app {name!r} not found")


def app_counts(conn: Connection, name: str) -> tuple[int, int]:
    live_machines = (
        select(func.count())
        .select_from(machines)
        .where(
            machines.c.app_name == name,
            machines.c.deleted.is_(False),
            machines.c.state != MachineState.DESTROYED.value,
        )
        .scalar_subquery()
    )
    live_volumes = (
        select(func.count())
        .select_from(volumes)
        .where(volumes.c.app_name == name, volumes.c.state.not_in(DESTROYED_VOLUME_STATES))
        .scalar_subquery()
    )
    row = conn.execute(select(live_machines, live_volumes)).one()
    return int(row[0]), int(row[1])


def delete_app(conn: Connection, name: str) -> None:
    """Children before parents, so foreign keys hold at every statement."""
    app_machines = select(machines.c.id).where(machines.c.app_name == name)
    app_volumes = select(volumes.c.id).where(volumes.c.app_name == name)
    conn.execute(delete(machine_events).where(machine_events.c.machine_id.in_(app_machines)))
    conn.execute(delete(machine_versions).where(machine_versions.c.machine_id.in_(app_machines)))
    logs.forget_app(conn, name, app_machines)  # a new app of the same name, any organisation's, starts empty
    conn.execute(delete(machines).where(machines.c.app_name == name))
    conn.execute(delete(volume_snapshots).where(volume_snapshots.c.volume_id.in_(app_volumes)))
    conn.execute(delete(volumes).where(volumes.c.app_name == name))
    conn.execute(delete(secrets).where(secrets.c.app_name == name))
    conn.execute(delete(ip_addresses).where(ip_addresses.c.app_name == name))
    conn.execute(delete(apps).where(apps.c.name == name))
