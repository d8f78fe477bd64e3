"""The system clock and Fly's timestamp format."""

from __future__ import annotations

import asyncio
import time

from aerodrome.core import Clock, SystemClock, rfc3339
from tests.support.clock import ManualClock


def test_system_clock_reads_wall_and_monotonic_time() -> None:
    clock: Clock = SystemClock()
    before_wall, before_mono = time.time(), time.monotonic()
    now, mono = clock.now(), clock.monotonic()
    assert before_wall <= now <= time.time()
    assert before_mono <= mono <= time.monotonic()
    assert clock.monotonic() >= mono


def test_rfc3339_is_utc_to_the_second() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00Z"
    assert rfc3339(1699408350) == "2023-11-08T01:52:30Z"
    assert rfc3339(1699408350.999) == "2023-11-08T01:52:30Z"  # fractions are dropped, not rounded up


def test_manual_clock_is_a_clock_that_moves_when_told() -> None:
    clock: Clock = ManualClock(now=100.0, monotonic=5.0)
    assert (clock.now(), clock.monotonic()) == (100.0, 5.0)
    assert isinstance(clock, ManualClock)
    clock.advance(2.5)
    assert (clock.now(), clock.monotonic()) == (102.5, 7.5)


async def test_system_clock_sleeps_through_its_monotonic_time() -> None:
    clock = SystemClock()
    before = clock.monotonic()
    await clock.sleep(0.01)
    assert clock.monotonic() >= before + 0.01


async def test_manual_clock_sleepers_wake_only_once_advanced_past_their_time() -> None:
    clock = ManualClock()
    short, long = asyncio.create_task(clock.sleep(1)), asyncio.create_task(clock.sleep(5))
    await asyncio.sleep(0)
    assert clock.sleepers == 2
    clock.advance(0.5)
    await asyncio.sleep(0)
    assert not short.done() and not long.done()
    clock.advance(0.5)
    await short  # its second has passed
    assert not long.done() and clock.sleepers == 1
    clock.advance(4)
    await long
    assert clock.sleepers == 0
    await clock.sleep(0)  # no time to wait: it returns without the clock moving
