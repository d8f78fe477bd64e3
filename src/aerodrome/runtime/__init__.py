"""The host runtime (Fly's flyd): images, the embedded registry, runc sandboxes and volumes on this host."""

from __future__ import annotations

from aerodrome.runtime.images import ImageStore
from aerodrome.runtime.registry import EmbeddedRegistry, TokenAuth
from aerodrome.runtime.registry_tokens import RegistryTokens, load_operator_credentials
from aerodrome.runtime.runc import (
    CONTAINER_PLACEHOLDER,
    HostServices,
    MachineUsage,
    Peer,
    RuncRuntime,
    check_peers,
    check_user_namespaces,
    claim_subordinate_ids,
    host_leftovers,
    machine_usage,
    parse_peer,
    route_orgs,
    unroute_orgs,
)
from aerodrome.runtime.sources import EmbeddedAccess, RegistryGate, allowed_registries
from aerodrome.runtime.volumes import LoopVolumeBackend

__all__ = [
    "CONTAINER_PLACEHOLDER",
    "EmbeddedAccess",
    "EmbeddedRegistry",
    "HostServices",
    "ImageStore",
    "LoopVolumeBackend",
    "MachineUsage",
    "Peer",
    "RegistryGate",
    "RegistryTokens",
    "RuncRuntime",
    "TokenAuth",
    "allowed_registries",
    "check_peers",
    "check_user_namespaces",
    "claim_subordinate_ids",
    "host_leftovers",
    "load_operator_credentials",
    "machine_usage",
    "parse_peer",
    "route_orgs",
    "unroute_orgs",
]
