"""The host agent's network half: its wire format, its HTTP server and the client that drives it."""

from __future__ import annotations

from aerodrome.agent.remote import RemoteAgent
from aerodrome.agent.server import AgentLimits, agent_server, build_agent_app, ensure_token

__all__ = ["AgentLimits", "RemoteAgent", "agent_server", "build_agent_app", "ensure_token"]
