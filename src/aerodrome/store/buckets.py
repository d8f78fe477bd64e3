"""Rate-limit buckets in one table, so that every replica takes from the same bucket.

A take is one statement in autocommit: the upsert locks the bucket's row, refills it by the time since its last
take (by the database's clock, the one every replica shares) and takes a token if one is there, all atomically;
two replicas taking at once queue on the row lock. A bucket idle long enough to be full again says nothing a
fresh one would not, so idle rows are removed now and then.
"""

from __future__ import annotations

import itertools

from sqlalchemy import Connection, text

from aerodrome.store.runner import Runner

_TAKE = text(
    """
    WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now)
    INSERT INTO rate_buckets AS b (key, tokens, refreshed_at, granted)
    SELECT :key, CAST(:burst AS float8) - 1, clock.now, true FROM clock
    ON CONFLICT (key) DO UPDATE SET
        tokens = CASE WHEN least(CAST(:burst AS float8), b.tokens + (excluded.refreshed_at - b.refreshed_at)
                                 * CAST(:rate AS float8)) >= 1
                 THEN least(CAST(:burst AS float8), b.tokens + (excluded.refreshed_at - b.refreshed_at)
                            * CAST(:rate AS float8)) - 1
                 ELSE least(CAST(:burst AS float8), b.tokens + (excluded.refreshed_at - b.refreshed_at)
                            * CAST(:rate AS float8)) END,
        granted = least(CAST(:burst AS float8), b.tokens + (excluded.refreshed_at - b.refreshed_at)
                        * CAST(:rate AS float8)) >= 1,
        refreshed_at = excluded.refreshed_at
    RETURNING granted, tokens
    """
)
_FORGET_IDLE = text("DELETE FROM rate_buckets WHERE refreshed_at < extract(epoch FROM clock_timestamp()) - :idle")
IDLE_SECONDS = 3600.0  # longer than any bucket takes to fill (burst / rate)
_SWEEP_EVERY = 10_000  # takes between removals of idle buckets


def take(conn: Connection, key: str, rate: float, burst: int) -> float | None:
    granted, tokens = conn.execute(_TAKE, {"key": key, "rate": rate, "burst": burst}).one()
    return None if granted else (1.0 - float(tokens)) / rate


def forget_idle(conn: Connection, idle: float) -> None:
    conn.execute(_FORGET_IDLE, {"idle": idle})


class RowBuckets:
    """`SharedBuckets` over the `rate_buckets` table of a PostgreSQL store."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self._takes = itertools.count(1)

    async def take(self, key: str, rate: float, burst: int) -> float | None:
        if next(self._takes) % _SWEEP_EVERY == 0:
            await self._runner.read(forget_idle, IDLE_SECONDS)
        # `read` runs in autocommit: the one statement is its own transaction, and it holds the row lock only
        # while it runs (a SERIALIZABLE write would abort and retry every take that raced another)
        return await self._runner.read(take, key, rate, burst)
