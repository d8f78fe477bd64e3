"""Engines and migrations. The SQLite-specific settings live here, in one marked section, and nowhere else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_MS = 5000


def sqlite_url(path: str | Path) -> str:
    return f"sqlite+pysqlite:///{Path(path)}"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def alembic_config(url: str) -> Config:
    """Alembic's configuration, built in code so the installed package needs no ini file on disk."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Passed as an attribute, not an option: ini interpolation would mangle a '%' in a password.
    config.attributes["url"] = url
    return config


def migrate(url: str) -> None:
    """Bring the database at `url` to the newest schema (`alembic upgrade head`)."""
    command.upgrade(alembic_config(url), "head")


def create_store_engine(url: str) -> Engine:
    """An engine for the store; SQLite gets the settings that make every acknowledged write durable."""
    # Configs are JSON columns and lists read thousands of them: orjson decodes them several times faster.
    codecs: dict[str, Any] = {"json_serializer": _dumps, "json_deserializer": orjson.loads}
    if not is_sqlite(url):
        return create_engine(url, pool_pre_ping=True, **codecs)
    # The runner commits on a thread of its own, with a connection opened on the event loop's.
    connect_args = {"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
    engine = create_engine(url, connect_args=connect_args, **codecs)
    event.listen(engine, "connect", _configure_sqlite)
    event.listen(engine, "begin", _begin_sqlite)
    return engine


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
