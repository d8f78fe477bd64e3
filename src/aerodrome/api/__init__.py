"""The HTTP API: Fly's Machines API v1, shaped exactly as Fly answers."""

from __future__ import annotations

from aerodrome.api.app import build_app
from aerodrome.api.errors import STATUS_BY_KIND, status_of

__all__ = ["STATUS_BY_KIND", "build_app", "status_of"]
