"""Inside a machine: the private network's resolver (Fly's fdaa::3), each machine's /.fly/api socket, and the
host's health checks of started machines."""

from __future__ import annotations

from aerodrome.inside.directory import Directory, Peer, Snapshot
from aerodrome.inside.guest_api import GuestApi
from aerodrome.inside.health import HealthChecker
from aerodrome.inside.names import Answer, Names
from aerodrome.inside.resolver import Resolver, ResolverSettings, freebind_socket

#: Fly's resolver address in every 6PN, and the IPv4 one aerodrome adds (link-local, never routed off the host).
RESOLVER_IPV6 = "fdaa::3"
RESOLVER_IPV4 = "169.254.0.3"
GUEST_API_PORT = 4280  # `http://_api.internal:4280`, as on Fly

__all__ = [
    "GUEST_API_PORT",
    "RESOLVER_IPV4",
    "RESOLVER_IPV6",
    "Answer",
    "Directory",
    "GuestApi",
    "HealthChecker",
    "Names",
    "Peer",
    "Resolver",
    "ResolverSettings",
    "Snapshot",
    "freebind_socket",
]
