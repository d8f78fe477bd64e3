"""Restart policies and the backoff between restarts."""

from __future__ import annotations

import pytest

from aerodrome.core import ExitInfo, restart_backoff, should_restart

CLEAN, FAILED, KILLED, OOM = ExitInfo(0), ExitInfo(3), ExitInfo(137, signal=9), ExitInfo(137, oom_killed=True)
STOPPED = ExitInfo(130, signal=2, requested_stop=True)


@pytest.mark.parametrize(
    ("policy", "exit", "count", "expected"),
    [
        ("always", CLEAN, 0, True),
        ("always", FAILED, 10_000, True),  # always ignores max_retries
        ("on-failure", CLEAN, 0, False),
        ("on-failure", FAILED, 0, True),
        ("on-failure", KILLED, 0, True),
        ("on-failure", OOM, 0, True),
        ("on-failure", ExitInfo(0, signal=15), 0, True),  # killed by a signal with a zero code
        ("on-failure", FAILED, 2, True),
        ("on-failure", FAILED, 3, False),  # max_retries 3 reached
        ("no", FAILED, 0, False),
        ("spot-price", FAILED, 0, False),
    ],
)
def test_policies(policy: str, exit: ExitInfo, count: int, expected: bool) -> None:
    assert should_restart(policy, 3, exit, count) is expected


@pytest.mark.parametrize("policy", ["always", "on-failure"])
def test_a_requested_stop_is_never_restarted(policy: str) -> None:
    assert should_restart(policy, 10, STOPPED, 0) is False


def test_backoff_doubles_from_a_tenth_of_a_second_up_to_ten() -> None:
    delays = [restart_backoff(n) for n in range(10)]
    assert delays[:7] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4])
    assert delays[7:] == [10.0, 10.0, 10.0]
    assert restart_backoff(10**9) == 10.0  # no overflow however long the crash loop
    assert all(isinstance(d, float) for d in delays)


def test_backoff_summed_over_a_crash_loop() -> None:
    # what a machine crashing at once waits over its first 20 restarts: under a minute for the first 8, then 10 s each
    assert sum(restart_backoff(n) for n in range(20)) == pytest.approx(12.7 + 13 * 10.0)
