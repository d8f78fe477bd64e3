"""Restart policies (`config.restart`): whether an exit is followed by a new start, and after how long."""

from __future__ import annotations

from aerodrome.core.models import ExitInfo


def should_restart(policy: str, max_retries: int, exit: ExitInfo, restart_count: int) -> bool:
    if exit.requested_stop:
        return False
    if policy == "always":
        return True
    if policy == "on-failure":
        return (exit.exit_code != 0 or exit.oom_killed or exit.signal > 0) and restart_count < max_retries
    return False  # "no", and "spot-price" which has no meaning on one host


def restart_backoff(restart_count: int) -> float:
    """Seconds before restart n: 0.1, 0.2, 0.4 … capped at 10 s, so a crash loop cannot spin the host."""
    return float(min(10.0, 0.1 * (2 ** min(restart_count, 10))))
