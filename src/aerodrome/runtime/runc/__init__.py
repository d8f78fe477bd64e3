"""The runc sandbox driver: machines as runc containers over overlay rootfs, each in its own network namespace."""

from __future__ import annotations

from aerodrome.runtime.runc.driver import RuncRuntime
from aerodrome.runtime.runc.source import ImageSource

__all__ = ["ImageSource", "RuncRuntime"]
