"""The host agent's network half: its wire format, its HTTP server and the client that drives it."""

from __future__ import annotations

from aerodrome.agent.wire import PROTOCOL_HEADER

__all__ = ["PROTOCOL_HEADER"]
