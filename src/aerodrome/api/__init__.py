"""The HTTP API: Fly's Machines API v1, shaped exactly as Fly answers."""

from __future__ import annotations

from aerodrome.api.app import build_app
from aerodrome.api.errors import STATUS_BY_KIND, status_of
from aerodrome.api.limits import API_LIMITS, ApiLimits, parse_limits
from aerodrome.api.listener import guarded_protocol

__all__ = ["API_LIMITS", "STATUS_BY_KIND", "ApiLimits", "build_app", "guarded_protocol", "parse_limits", "status_of"]
