"""Token buckets as Fly's Machines API applies them, driven by a clock the test moves."""

from __future__ import annotations

import pytest

from aerodrome.core import Limit, RateLimitedError, RateLimiter
from aerodrome.core.ratelimit import DEFAULT_LIMITS
from tests.support.clock import ManualClock


def take(limiter: RateLimiter, times: int, action: str = "stop", key: str = "m1") -> None:
    for _ in range(times):
        limiter.check(action, key)


def refusal(limiter: RateLimiter, action: str = "stop", key: str = "m1") -> RateLimitedError:
    with pytest.raises(RateLimitedError) as caught:
        limiter.check(action, key)
    return caught.value


def test_a_full_bucket_allows_its_burst_then_refuses() -> None:
    limiter = RateLimiter(ManualClock(), {"default": Limit(1.0, 3)})
    take(limiter, 3)
    refused = refusal(limiter)
    assert refused.retry_after == pytest.approx(1.0)
    assert str(refused) == "rate limit exceeded for stop on m1"


def test_tokens_refill_at_the_rate_and_retry_after_shrinks() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock, {"default": Limit(2.0, 2)})
    take(limiter, 2)
    assert refusal(limiter).retry_after == pytest.approx(0.5)
    clock.advance(0.25)  # half a token
    assert refusal(limiter).retry_after == pytest.approx(0.25)
    clock.advance(0.25)
    take(limiter, 1)
    assert refusal(limiter).retry_after == pytest.approx(0.5)


def test_an_idle_bucket_refills_to_its_burst_and_no_further() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock, {"default": Limit(1.0, 3)})
    take(limiter, 3)
    clock.advance(3600)
    take(limiter, 3)
    refusal(limiter)


def test_buckets_are_per_action_and_per_identifier() -> None:
    limiter = RateLimiter(ManualClock(), {"default": Limit(1.0, 1)})
    take(limiter, 1, "stop", "m1")
    take(limiter, 1, "stop", "m2")
    take(limiter, 1, "start", "m1")
    refusal(limiter, "stop", "m1")
    refusal(limiter, "start", "m1")


def test_fly_defaults_get_five_per_second_burst_ten_others_one_burst_three() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock)
    assert {"default": Limit(1.0, 3), "get": Limit(5.0, 10)} == DEFAULT_LIMITS
    take(limiter, 10, "get")
    assert refusal(limiter, "get").retry_after == pytest.approx(0.2)
    take(limiter, 3, "restart")
    assert refusal(limiter, "restart").retry_after == pytest.approx(1.0)
    clock.advance(1.0)
    take(limiter, 5, "get")
    take(limiter, 1, "restart")


def test_a_disabled_limiter_never_refuses_and_can_be_enabled() -> None:
    limiter = RateLimiter(ManualClock(), {"default": Limit(1.0, 1)}, enabled=False)
    take(limiter, 100)
    limiter.enabled = True
    take(limiter, 1)
    refusal(limiter)


def test_refused_checks_take_no_token() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock, {"default": Limit(1.0, 1)})
    take(limiter, 1)
    for _ in range(50):
        refusal(limiter)
    clock.advance(1.0)
    take(limiter, 1)  # hammering while refused did not push the next token further away


def test_the_bucket_table_is_bounded() -> None:
    limiter = RateLimiter(ManualClock(), {"default": Limit(1.0, 1)})
    take(limiter, 1, key="m0")
    for index in range(1, 100_001):
        take(limiter, 1, key=f"m{index}")
    take(limiter, 1, key="m0")  # forgotten with the rest once the table passed its bound: a full bucket again
