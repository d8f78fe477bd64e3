"""The host agent (Fly's flyd): one host's machines, volumes and images behind `aerodrome.core.HostAgent`, in
process (LocalAgent) or over its wire protocol (the server of `aerodrome agent`, and RemoteAgent)."""

from __future__ import annotations

from aerodrome.agent.host import open_local_agent
from aerodrome.agent.local import LocalAgent
from aerodrome.agent.remote import RemoteAgent
from aerodrome.agent.server import AgentLimits, agent_server, build_agent_app, ensure_token
from aerodrome.agent.specs import resolve_argv
from aerodrome.agent.tls import ClusterCA, Identity, read_ca_file

__all__ = [
    "AgentLimits",
    "ClusterCA",
    "Identity",
    "LocalAgent",
    "RemoteAgent",
    "agent_server",
    "build_agent_app",
    "ensure_token",
    "open_local_agent",
    "read_ca_file",
    "resolve_argv",
]
