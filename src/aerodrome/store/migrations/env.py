"""Alembic's entry point. `migrate(url)` passes the URL as a config attribute; the alembic CLI may pass it as
`sqlalchemy.url` in an ini file or in AERODROME_DATABASE_URL."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool

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


def run_online() -> None:
    engine = create_engine(_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            # Batch mode lets later revisions alter columns on SQLite, which has no ALTER COLUMN.
            context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
