"""Engines and migrations. The settings of each engine live here, in one marked section each, and nowhere else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_MS = 5000


def sqlite_url(path: str | Path) -> str:
    return f"sqlite+pysqlite:///{Path(path)}"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def is_postgresql(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def check_database_url(url: str) -> str:
    """`url` if the store can open it (SQLite or PostgreSQL), else ValueError naming what is accepted."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ValueError(f"not a database URL: {url!r} (postgresql://USER[:PASS]@HOST[:PORT]/DB)") from exc
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database {parsed.get_backend_name()!r}: use postgresql://USER@HOST/DB")
    return url


def alembic_config(url: str) -> Config:
    """Alembic's configuration, built in code so the installed package needs no ini file on disk."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Passed as an attribute, not an option: ini interpolation would mangle a '%' in a password.
    config.attributes["url"] = url
    return config


def migrate(url: str) -> None:
    """Bring the database at `url` to the newest schema (`alembic upgrade head`), from outside an event loop."""
    command.upgrade(alembic_config(url), "head")


def migrate_on(connection: Connection) -> None:
    """The same, on a connection already open (`AsyncConnection.run_sync` hands one over on the event loop)."""
    config = alembic_config(connection.engine.url.render_as_string(hide_password=False))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def create_store_engine(url: str) -> Engine:
    """An engine for the store; SQLite gets the settings that make every acknowledged write durable."""
    if not is_sqlite(url):
        return create_engine(url, pool_pre_ping=True, **_codecs())
    # The runner commits on a thread of its own, with a connection opened on the event loop's.
    connect_args = {"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
    engine = create_engine(url, connect_args=connect_args, **_codecs())
    event.listen(engine, "connect", _configure_sqlite)
    event.listen(engine, "begin", _begin_sqlite)
    return engine


def _codecs() -> dict[str, Any]:
    # Configs are JSON columns and lists read thousands of them: orjson decodes them several times faster.
    return {"json_serializer": _dumps, "json_deserializer": orjson.loads}


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # integers past 64 bits, which a client may put in a config: the stdlib takes them
        return json.dumps(value)


# --- SQLite only ------------------------------------------------------------------------------------------------
# WAL lets readers proceed while one writer commits; synchronous=FULL fsyncs the WAL at every commit, so a
# mutation the API has acknowledged survives a power cut or SIGKILL. The driver's own transaction handling is
# turned off (isolation_level=None) and BEGIN is issued on SQLAlchemy's begin event instead: plain BEGIN for
# reads, `BEGIN IMMEDIATE` on connections marked with SQLITE_WRITER, which takes the write lock up front and
# avoids the deadlock of two readers upgrading to writers at once.

SQLITE_WRITER = {"sqlite_begin_immediate": True}


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def _begin_sqlite(connection: Connection) -> None:
    immediate = connection.get_execution_options().get("sqlite_begin_immediate", False)
    # Straight to the driver: SQLAlchemy's statement machinery would double the cost of a point read.
    connection.connection.driver_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")  # type: ignore[union-attr]


# --- PostgreSQL only --------------------------------------------------------------------------------------------
# asyncpg under SQLAlchemy's AsyncEngine: the query functions stay synchronous `(Connection, ...) -> T` and run
# through `AsyncConnection.run_sync`, while every round trip awaits on the event loop (no thread, no blocking
# call). No ping when a connection is taken from the pool (a round trip per unit of work): the first use of
# one that a restart broke fails, and SQLAlchemy then drops every connection opened before it. Connecting and
# each statement have deadlines, so an unreachable server answers 503 in seconds rather than holding requests.

PG_POOL_SIZE = 10
PG_POOL_OVERFLOW = 20
PG_CONNECT_TIMEOUT = 5.0
PG_STATEMENT_TIMEOUT = 30.0
#: pg_advisory_xact_lock key held while migrating, so replicas starting together migrate one after another.
PG_MIGRATION_LOCK = 0x6165726F  # "aero"


def asyncpg_url(url: str | URL) -> URL:
    """`postgresql://…` as SQLAlchemy's asyncpg dialect names it (whatever driver the URL named)."""
    return make_url(url).set(drivername="postgresql+asyncpg")


def create_async_store_engine(url: str | URL) -> AsyncEngine:
    return create_async_engine(
        asyncpg_url(url),
        pool_size=PG_POOL_SIZE,
        max_overflow=PG_POOL_OVERFLOW,
        pool_timeout=PG_CONNECT_TIMEOUT,
        connect_args={"timeout": PG_CONNECT_TIMEOUT, "command_timeout": PG_STATEMENT_TIMEOUT},
        **_codecs(),
    )


def lock_migrations(connection: Connection) -> None:
    """Alembic's env: one migrating replica at a time; the lock goes with the migration's transaction."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_MIGRATION_LOCK})")
