"""Queries for app secrets and IP addresses: the app-level resources that are neither machines nor volumes."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from aerodrome.core import AlreadyExistsError, IPAddress, NotFoundError, Secret
from aerodrome.store import mapping
from aerodrome.store.schema import apps, ip_addresses, secrets


def put_secrets(conn: Connection, app_name: str, written: Sequence[Secret], deleted: Sequence[str]) -> int:
    """Each written secret is stamped with the app's new version; its `created_at` survives an overwrite."""
    version = _bump_secrets_version(conn, app_name)
    if deleted:
        conn.execute(delete(secrets).where(secrets.c.app_name == app_name, secrets.c.name.in_(deleted)))
    for secret in written:
        row = mapping.secret_to_row(secret, version)
        # Update-then-insert is an upsert every engine understands; the write lock makes it safe on SQLite.
        changed = conn.execute(
            update(secrets)
            .where(secrets.c.app_name == app_name, secrets.c.name == secret.name)
            .values(ciphertext=row["ciphertext"], digest=row["digest"], version=version, updated_at=row["updated_at"])
        )
        if changed.rowcount == 0:
            conn.execute(insert(secrets).values(**{**row, "app_name": app_name}))
    return version


def _bump_secrets_version(conn: Connection, app_name: str) -> int:
    statement = (
        update(apps)
        .where(apps.c.name == app_name)
        .values(secrets_version=apps.c.secrets_version + 1)
        .returning(apps.c.secrets_version)
    )
    version = conn.execute(statement).scalar()
    if version is None:
        raise NotFoundError(f"app {app_name} not found")
    return int(version)


def list_secrets(conn: Connection, app_name: str) -> list[Secret]:
    query = select(secrets).where(secrets.c.app_name == app_name).order_by(secrets.c.name)
    return [mapping.secret_from_row(row) for row in conn.execute(query)]


def secrets_version(conn: Connection, app_name: str) -> int:
    version = conn.execute(select(apps.c.secrets_version).where(apps.c.name == app_name)).scalar()
    return 0 if version is None else int(version)


def add_ip(conn: Connection, ip: IPAddress) -> None:
    if conn.execute(select(ip_addresses.c.id).where(ip_addresses.c.address == ip.address)).first() is not None:
        raise AlreadyExistsError(f"address {ip.address} is already allocated")
    try:
        conn.execute(insert(ip_addresses).values(**mapping.ip_to_row(ip)))
    except IntegrityError as exc:  # a concurrent writer on an engine that does not serialise (PostgreSQL)
        raise AlreadyExistsError(f"address {ip.address} is already allocated") from exc


def list_ips(conn: Connection, app_name: str | None) -> list[IPAddress]:
    query = select(ip_addresses).order_by(ip_addresses.c.created_at, ip_addresses.c.id)
    if app_name is not None:
        query = query.where(ip_addresses.c.app_name == app_name)
    return [mapping.ip_from_row(row) for row in conn.execute(query)]


def delete_ip(conn: Connection, ip_id: str) -> None:
    conn.execute(delete(ip_addresses).where(ip_addresses.c.id == ip_id))
