"""The runc sandbox driver: machines as runc containers over overlay rootfs, each in its own network namespace."""

from __future__ import annotations

from aerodrome.core import MachineUsage
from aerodrome.runtime.runc.containers import PLACEHOLDER as CONTAINER_PLACEHOLDER
from aerodrome.runtime.runc.driver import HostServices, RuncRuntime
from aerodrome.runtime.runc.leftovers import host_leftovers
from aerodrome.runtime.runc.peers import Peer, check_peers, parse_peer, route_orgs, unroute_orgs
from aerodrome.runtime.runc.source import ImageSource
from aerodrome.runtime.runc.usage import machine_usage
from aerodrome.runtime.runc.userns import check_support as check_user_namespaces
from aerodrome.runtime.runc.userns import claim_subordinate_ids

__all__ = [
    "CONTAINER_PLACEHOLDER",
    "HostServices",
    "ImageSource",
    "MachineUsage",
    "Peer",
    "RuncRuntime",
    "check_peers",
    "check_user_namespaces",
    "claim_subordinate_ids",
    "host_leftovers",
    "machine_usage",
    "parse_peer",
    "route_orgs",
    "unroute_orgs",
]
