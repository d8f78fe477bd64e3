"""Queries for volumes and their snapshots."""

from __future__ import annotations

from sqlalchemy import Connection, insert, select, update

from aerodrome.core import NotFoundError, Volume, VolumeSnapshot
from aerodrome.store import mapping
from aerodrome.store.orgs import DESTROYED_VOLUME_STATES
from aerodrome.store.schema import volume_snapshots, volumes


def add_volume(conn: Connection, volume: Volume) -> None:
    conn.execute(insert(volumes).values(**mapping.volume_to_row(volume)))


def get_volume(conn: Connection, volume_id: str) -> Volume | None:
    row = conn.execute(select(volumes).where(volumes.c.id == volume_id)).first()
    return None if row is None else mapping.volume_from_row(row)


def list_volumes(conn: Connection, app_name: str, *, include_destroyed: bool) -> list[Volume]:
    query = select(volumes).where(volumes.c.app_name == app_name)
    if not include_destroyed:
        query = query.where(volumes.c.state.not_in(DESTROYED_VOLUME_STATES))
    query = query.order_by(volumes.c.created_at, volumes.c.id)
    return [mapping.volume_from_row(row) for row in conn.execute(query)]


def save_volume(conn: Connection, volume: Volume) -> None:
    row = mapping.volume_to_row(volume)
    del row["id"]
    if conn.execute(update(volumes).where(volumes.c.id == volume.id).values(**row)).rowcount == 0:
        raise NotFoundError(f"volume {volume.id} not found")


def add_snapshot(conn: Connection, snapshot: VolumeSnapshot) -> None:
    conn.execute(insert(volume_snapshots).values(**mapping.snapshot_to_row(snapshot)))


def get_snapshot(conn: Connection, snapshot_id: str) -> VolumeSnapshot | None:
    row = conn.execute(select(volume_snapshots).where(volume_snapshots.c.id == snapshot_id)).first()
    return None if row is None else mapping.snapshot_from_row(row)


def list_snapshots(conn: Connection, volume_id: str) -> list[VolumeSnapshot]:
    query = (
        select(volume_snapshots)
        .where(volume_snapshots.c.volume_id == volume_id)
        .order_by(volume_snapshots.c.created_at, volume_snapshots.c.id)
    )
    return [mapping.snapshot_from_row(row) for row in conn.execute(query)]
