from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, inspect

from aerodrome.store import SqlStore, create_store_engine, metadata, migrate, sqlite_url
from aerodrome.store.database import alembic_config


def drift(url: str) -> list[object]:
    """What `alembic check` would report: differences between the migrated database and schema.py."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_migrations_match_the_schema(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "migrated.db")
    migrate(url)
    assert drift(url) == []


def test_migrate_is_idempotent_and_reversible(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "twice.db")
    migrate(url)
    migrate(url)
    command.downgrade(alembic_config(url), "base")
    engine = create_engine(url)
    try:
        assert inspect(engine).get_table_names() == ["alembic_version"]
    finally:
        engine.dispose()
    migrate(url)
    assert drift(url) == []


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
