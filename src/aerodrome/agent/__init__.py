"""The host agent (Fly's flyd): one host's machines, volumes and images behind `aerodrome.core.HostAgent`."""

from __future__ import annotations

from aerodrome.agent.local import LocalAgent
from aerodrome.agent.specs import resolve_argv

__all__ = ["LocalAgent", "resolve_argv"]
