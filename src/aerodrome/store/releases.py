"""Queries for releases and secret keys. A release's (and a key's) version is one more than the newest, assigned
in the same transaction that inserts it, so two writers never number two alike (the primary or unique key refuses
the second)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from aerodrome.core import Release, SecretKey
from aerodrome.store.schema import releases, secret_keys


def _from_row(row: object) -> Release:
    return Release(**{name: getattr(row, name) for name in Release.__dataclass_fields__})


def add_release(conn: Connection, release: Release) -> Release:
    newest = conn.execute(select(func.max(releases.c.version)).where(releases.c.app_name == release.app_name))
    numbered = replace(release, version=(newest.scalar() or 0) + 1)
    conn.execute(insert(releases).values(**{name: getattr(numbered, name) for name in Release.__dataclass_fields__}))
    return numbered


def get_release(conn: Connection, release_id: str) -> Release | None:
    row = conn.execute(select(releases).where(releases.c.id == release_id)).first()
    return None if row is None else _from_row(row)


def list_releases(conn: Connection, app_name: str, limit: int) -> list[Release]:
    query = select(releases).where(releases.c.app_name == app_name).order_by(releases.c.version.desc()).limit(limit)
    return [_from_row(row) for row in conn.execute(query)]


def update_release(conn: Connection, release_id: str, status: str, metadata: str, at: str) -> Release | None:
    statement = update(releases).where(releases.c.id == release_id)
    conn.execute(statement.values(status=status, metadata=metadata, updated_at=at))
    return get_release(conn, release_id)


def add_secret_key(conn: Connection, key: SecretKey) -> SecretKey:
    same_name = (secret_keys.c.app_name == key.app_name) & (secret_keys.c.name == key.name)
    newest = conn.execute(select(func.max(secret_keys.c.version)).where(same_name)).scalar()
    numbered = replace(key, version=(newest or 0) + 1)
    conn.execute(insert(secret_keys).values(**{f: getattr(numbered, f) for f in SecretKey.__dataclass_fields__}))
    return numbered


def _key_from_row(row: Any) -> SecretKey:
    return SecretKey(row.app_name, row.name, row.version, row.type, bytes(row.key_ciphertext), row.created_at)


def get_secret_key(conn: Connection, app_name: str, name: str, version: int | None) -> SecretKey | None:
    query = select(secret_keys).where(secret_keys.c.app_name == app_name, secret_keys.c.name == name)
    if version is not None:
        query = query.where(secret_keys.c.version == version)
    row = conn.execute(query.order_by(secret_keys.c.version.desc()).limit(1)).first()
    return None if row is None else _key_from_row(row)


def list_secret_keys(conn: Connection, app_name: str) -> list[SecretKey]:
    rows = conn.execute(
        select(secret_keys)
        .where(secret_keys.c.app_name == app_name)
        .order_by(secret_keys.c.name, secret_keys.c.version.desc())
    )
    newest: dict[str, SecretKey] = {}
    for row in rows:
        newest.setdefault(row.name, _key_from_row(row))
    return list(newest.values())


def delete_secret_key(conn: Connection, app_name: str, name: str) -> bool:
    statement = delete(secret_keys).where(secret_keys.c.app_name == app_name, secret_keys.c.name == name)
    return conn.execute(statement).rowcount > 0
