"""aerodrome: the Fly.io Machines API, implemented for real on your own Linux host."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
