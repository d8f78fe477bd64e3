"""The change feed between replicas over a real PostgreSQL: two relays on one database (as two replicas hold),
each told of the other's changes and not of its own; after PostgreSQL restarts, each says changes may have been
missed, and carries changes again. The rate-limit buckets: one bucket for every `RowBuckets` on the database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from aerodrome.core import IPS, MACHINE, Change, Limit, RateLimitedError, RateLimiter, SystemClock
from aerodrome.store import SqlStore
from aerodrome.store.changes import PgChangeRelay
from tests.support.postgres import PostgresServer

DEADLINE = 30.0  # for what must arrive; nothing here waits for it to pass


class Heard:
    def __init__(self) -> None:
        self.changes: list[Change | None] = []
        self._arrived = asyncio.Event()

    def __call__(self, change: Change | None) -> None:
        self.changes.append(change)
        self._arrived.set()

    async def next(self) -> Change | None:
        while not self.changes:
            self._arrived.clear()
            await asyncio.wait_for(self._arrived.wait(), DEADLINE)
        return self.changes.pop(0)


@pytest.fixture
def database(postgres_server: PostgresServer) -> Iterator[str]:
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)


async def test_each_relay_hears_the_others_changes_and_not_its_own(database: str) -> None:
    one, two = PgChangeRelay(database), PgChangeRelay(database)
    heard_one, heard_two = Heard(), Heard()
    await one.start(heard_one)
    await two.start(heard_two)
    try:
        one.send(Change(MACHINE, "m1", "web"))
        one.send(Change(IPS, "web", "web"))
        assert [await heard_two.next(), await heard_two.next()] == [
            Change(MACHINE, "m1", "web"),
            Change(IPS, "web", "web"),
        ]
        two.send(Change(MACHINE, "m2", "api"))
        assert await heard_one.next() == Change(MACHINE, "m2", "api")
        assert heard_one.changes == [] and heard_two.changes == []  # nobody heard itself
    finally:
        await one.close()
        await two.close()


async def test_after_postgresql_restarts_a_relay_says_so_and_carries_changes_again(
    postgres_server: PostgresServer, database: str
) -> None:
    one, two = PgChangeRelay(database), PgChangeRelay(database)
    heard_one, heard_two = Heard(), Heard()
    await one.start(heard_one)
    await two.start(heard_two)
    try:
        await asyncio.to_thread(postgres_server.stop)
        await asyncio.to_thread(postgres_server.start)
        assert await heard_one.next() is None  # connected again: changes made meanwhile are unknown
        assert await heard_two.next() is None
        await asyncio.wait_for(one.connected.wait(), DEADLINE)
        one.send(Change(MACHINE, "m1", "web"))
        assert await heard_two.next() == Change(MACHINE, "m1", "web")
    finally:
        await one.close()
        await two.close()


async def test_replicas_take_from_one_bucket(database: str) -> None:
    stores = [await SqlStore.open(database), await SqlStore.open(database)]
    try:
        limiters = [RateLimiter(SystemClock(), {"default": Limit(0.01, 3)}, shared=s.shared_buckets()) for s in stores]
        for n in range(3):
            await limiters[n % 2].check("stop", "m1")
        for limiter in limiters:
            with pytest.raises(RateLimitedError) as refused:
                await limiter.check("stop", "m1")
            assert refused.value.retry_after > 0
        await limiters[1].check("stop", "m2")  # a bucket per key
    finally:
        for store in stores:
            await store.close()
