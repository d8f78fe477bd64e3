"""Auto-extend decisions (Fly's `extend_threshold_percent`, `add_size_gb`, `size_gb_limit`): pure functions."""

from __future__ import annotations

from aerodrome.core import InvalidArgumentError, VolumeUsage


def used_percent(usage: VolumeUsage) -> float:
    """Share of the filesystem in use, 0 to 100, as `df` counts it (reserved blocks excluded from the total)."""
    usable = usage.blocks - usage.blocks_free + usage.blocks_avail
    if usable <= 0:
        return 100.0
    return 100.0 * (usage.blocks - usage.blocks_free) / usable


def needs_extend(usage: VolumeUsage, threshold_percent: int) -> bool:
    """True when usage has reached `threshold_percent`; a threshold of 0 turns auto-extend off."""
    if threshold_percent < 0 or threshold_percent > 100:
        raise InvalidArgumentError(f"extend_threshold_percent must be within 0..100, not {threshold_percent}")
    return threshold_percent > 0 and used_percent(usage) >= threshold_percent


def extended_size(size_bytes: int, add_bytes: int, limit_bytes: int) -> int | None:
    """The next size of an auto-extended volume, capped at `limit_bytes`; None when already at the limit."""
    if add_bytes <= 0:
        return None
    target = size_bytes + add_bytes if limit_bytes <= 0 else min(size_bytes + add_bytes, limit_bytes)
    return target if target > size_bytes else None
