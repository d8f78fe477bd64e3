"""The host runtime (Fly's flyd): images, the embedded registry, runc sandboxes and volumes on this host."""

from __future__ import annotations

from aerodrome.runtime.images import ImageStore
from aerodrome.runtime.registry import EmbeddedRegistry
from aerodrome.runtime.runc import RuncRuntime, check_user_namespaces, claim_subordinate_ids, host_leftovers
from aerodrome.runtime.volumes import LoopVolumeBackend

__all__ = [
    "EmbeddedRegistry",
    "ImageStore",
    "LoopVolumeBackend",
    "RuncRuntime",
    "check_user_namespaces",
    "claim_subordinate_ids",
    "host_leftovers",
]
