"""Token buckets as Fly's Machines API applies them, driven by a clock the test moves."""

from __future__ import annotations

import pytest

from aerodrome.core import Limit, RateLimitedError, RateLimiter
from aerodrome.core.ratelimit import DEFAULT_LIMITS
from tests.support.clock import ManualClock


async def take(limiter: RateLimiter, times: int, action: str = "stop", key: str = "m1") -> None:
    for _ in range(times):
        await limiter.check(action, key)


async def refusal(limiter: RateLimiter, action: str = "stop", key: str = "m1") -> RateLimitedError:
    with pytest.raises(RateLimitedError) as caught:
        await limiter.check(action, key)
    return caught.value


async def test_a_full_bucket_allows_its_burst_then_refuses() -> None:
    limiter = RateLimiter(ManualClock(), {"default": Limit(1.0, 3)})
    await take(limiter, 3)
    refused = await refusal(limiter)
    assert refused.retry_after == pytest.approx(1.0)
    assert str(refused) == "rate limit exceeded for stop on m1"


async def test_tokens_refill_at_the_rate_and_retry_after_shrinks() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock, {"default": Limit(2.0, 2)})
    await take(limiter, 2)
    assert (await refusal(limiter)).retry_after == pytest.approx(0.5)
    clock.advance(0.25)  # half a token
    assert (await refusal(limiter)).retry_after == pytest.approx(0.25)
    clock.advance(0.25)
    await take(limiter, 1)
    assert (await refusal(limiter)).retry_after == pytest.approx(0.5)


async def test_an_idle_bucket_refills_to_its_burst_and_no_further() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock, {"default": Limit(1.0, 3)})
    await take(limiter, 3)
    clock.advance(3600)
    await take(limiter, 3)
    await refusal(limiter)


async def test_buckets_are_per_action_and_per_identifier() -> None:
    limiter = RateLimiter(ManualClock(), {"default": Limit(1.0, 1)})
    await take(limiter, 1, "stop", "m1")
    await take(limiter, 1, "stop", "m2")
    await take(limiter, 1, "start", "m1")
    await refusal(limiter, "stop", "m1")
    await refusal(limiter, "start", "m1")


async def test_fly_defaults_get_five_per_second_burst_ten_others_one_burst_three() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock)
    assert {"default": Limit(1.0, 3), "get": Limit(5.0, 10)} == DEFAULT_LIMITS
    await take(limiter, 10, "get")
    assert (await refusal(limiter, "get")).retry_after == pytest.approx(0.2)
    await take(limiter, 3, "restart")
    assert (await refusal(limiter, "restart")).retry_after == pytest.approx(1.0)
    clock.advance(1.0)
    await take(limiter, 5, "get")
    await take(limiter, 1, "restart")


async def test_a_disabled_limiter_never_refuses_and_can_be_enabled() -> None:
    limiter = RateLimiter(ManualClock(), {"default": Limit(1.0, 1)}, enabled=False)
    await take(limiter, 100)
    limiter.enabled = True
    await take(limiter, 1)
    await refusal(limiter)


async def test_refused_checks_take_no_token() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock, {"default": Limit(1.0, 1)})
    await take(limiter, 1)
    for _ in range(50):
        await refusal(limiter)
    clock.advance(1.0)
    await take(limiter, 1)  # hammering while refused did not push the next token further away


async def test_the_bucket_table_is_bounded() -> None:
    limiter = RateLimiter(ManualClock(), {"default": Limit(1.0, 1)})
    await take(limiter, 1, key="m0")
    for index in range(1, 100_001):
        await take(limiter, 1, key=f"m{index}")
    await take(limiter, 1, key="m0")  # forgotten with the rest once the table passed its bound: a full bucket again
