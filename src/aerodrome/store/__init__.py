"""Persistence: the core's `Store` over SQLAlchemy Core, with Alembic migrations. SQLite (WAL) by default."""

from __future__ import annotations

from aerodrome.store.database import check_database_url, create_store_engine, migrate, sqlite_url
from aerodrome.store.hosts import HostRecord, HostTable
from aerodrome.store.schema import metadata
from aerodrome.store.sql_store import SqlStore

__all__ = [
    "HostRecord",
    "HostTable",
    "SqlStore",
    "check_database_url",
    "create_store_engine",
    "metadata",
    "migrate",
    "sqlite_url",
]
