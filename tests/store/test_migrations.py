from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, Connection, Integer, MetaData, Table, create_engine, inspect

from aerodrome.store import SqlStore, create_store_engine, metadata, migrate, sqlite_url
from aerodrome.store.database import alembic_config, create_async_store_engine, is_postgresql

T = TypeVar("T")


def on_database(url: str, inspect_with: Callable[[Connection], T]) -> T:
    """`inspect_with` run on a connection to `url`, through the store's one PostgreSQL driver where it is one."""
    if is_postgresql(url):
        return asyncio.run(_on_postgresql(url, inspect_with))
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return inspect_with(connection)
    finally:
        engine.dispose()


async def _on_postgresql(url: str, inspect_with: Callable[[Connection], T]) -> T:
    engine = create_async_store_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(inspect_with)
    finally:
        await engine.dispose()


def drift(url: str) -> list[object]:
    """What `alembic check` would report: differences between the migrated database and schema.py."""

    def compare(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    return on_database(url, compare)


def test_migrations_match_the_schema(database_url: str) -> None:
    migrate(database_url)
    assert drift(database_url) == []


def test_migrate_is_idempotent_and_reversible(database_url: str) -> None:
    migrate(database_url)
    migrate(database_url)
    command.downgrade(alembic_config(database_url), "base")
    assert on_database(database_url, lambda c: inspect(c).get_table_names()) == ["alembic_version"]
    migrate(database_url)
    assert drift(database_url) == []


async def test_open_applies_durability_pragmas(tmp_path: Path) -> None:
    store = await SqlStore.open(sqlite_url(tmp_path / "pragmas.db"))
    await store.close()
    engine = create_store_engine(sqlite_url(tmp_path / "pragmas.db"))
    try:
        with engine.connect() as connection:
            settings = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
    finally:
        engine.dispose()
    assert settings == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1, "busy_timeout": 5000}


def test_drift_check_sees_a_difference(tmp_path: Path) -> None:
    """Guards the check above against passing vacuously."""
    url = sqlite_url(tmp_path / "behind.db")
    migrate(url)
    changed = MetaData()
    for table in metadata.tables.values():
        table.to_metadata(changed)
    Table("machines", changed, Column("extra", Integer), extend_existing=True)
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            found = compare_metadata(MigrationContext.configure(connection), changed)
    finally:
        engine.dispose()
    assert [(diff[0], diff[3].name) for diff in found] == [("add_column", "extra")]
