"""Every store test runs on both engines: the embedded SQLite file, and a PostgreSQL database of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from aerodrome.store import SqlStore, sqlite_url
from tests.store.factories import ORG, make_app
from tests.support.postgres import PostgresServer


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "aerodrome.db")
        return
    postgres: PostgresServer = request.getfixturevalue("postgres_server")
    url = postgres.create_database()
    yield url
    postgres.drop_database(url)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlStore]:
    opened = await SqlStore.open(database_url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def app_store(store: SqlStore) -> SqlStore:
    """A store holding the organisation `personal` and its app `app1`."""
    await store.ensure_org(ORG, "Personal")
    await store.add_app(make_app())
    return store
