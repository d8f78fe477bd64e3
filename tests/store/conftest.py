from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aerodrome.store import SqlStore
from tests.store.factories import ORG, make_app


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    opened = SqlStore.open_sqlite(tmp_path / "aerodrome.db")
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
