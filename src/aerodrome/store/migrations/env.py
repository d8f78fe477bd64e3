"""Alembic's entry point. `migrate(url)` passes the URL as a config attribute, `migrate_on(connection)` an open
connection; the alembic CLI may pass the URL as `sqlalchemy.url` in an ini file or in AERODROME_DATABASE_URL."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from aerodrome.store.database import create_async_store_engine, is_postgresql, lock_migrations
from aerodrome.store.schema import metadata


def _url() -> str:
    config = context.config
    url = (
        config.attributes.get("url")
        or config.get_main_option("sqlalchemy.url")
        or os.environ.get("AERODROME_DATABASE_URL")
    )
    if not url:
        raise RuntimeError("no database URL: set sqlalchemy.url or AERODROME_DATABASE_URL")
    return str(url)


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_on(connection: Connection) -> None:
    # Batch mode lets later revisions alter columns on SQLite, which has no ALTER COLUMN (PostgreSQL's ALTER as is).
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        lock_migrations(connection)
        context.run_migrations()


async def run_async(url: str) -> None:
    engine = create_async_store_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(run_on)
    finally:
        await engine.dispose()


def run_online() -> None:
    given = context.config.attributes.get("connection")
    if given is not None:
        run_on(given)
        return
    url = _url()
    if is_postgresql(url):  # the store's one PostgreSQL driver is asyncpg
        asyncio.run(run_async(url))
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            run_on(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
