"""Queries for releases. A release's version is one more than its app's newest, assigned in the same transaction
that inserts it, so two writers never number two releases alike (the unique key refuses the second)."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import Connection, func, insert, select, update

from aerodrome.core import Release
from aerodrome.store.schema import releases


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
