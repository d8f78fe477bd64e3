"""Volumes as sparse ext4 images on loop devices, and the auto-extend policy."""

from __future__ import annotations

from aerodrome.runtime.volumes.backend import LoopVolumeBackend
from aerodrome.runtime.volumes.policy import extended_size, needs_extend, used_percent

__all__ = ["LoopVolumeBackend", "extended_size", "needs_extend", "used_percent"]
