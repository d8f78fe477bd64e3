"""`open_local_agent`: the in-process agent of `aerodrome agent`, built from its data directory alone.

The directory takes the same parts as `serve`'s (images/, runtime/, volumes/), so one host's agent and control
plane may share it. Pulls from the embedded registry carry tokens signed with the key in `registry_keys` (the
control plane's DATA/registry: the registry and the agent are on one host).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aerodrome.agent.local import LocalAgent
from aerodrome.runtime import (
    EmbeddedAccess,
    ImageStore,
    LoopVolumeBackend,
    RegistryGate,
    RegistryTokens,
    RuncRuntime,
    allowed_registries,
    parse_peer,
)

DEFAULT_REGISTRY = "127.0.0.1:5000"  # serve's --registry default
DEFAULT_POOL = "172.30.0.0/16"  # serve's --machine-ipv4-pool default
DEFAULT_NETNS_POOL = 2  # serve's --netns-pool default


async def open_local_agent(
    data_dir: Path,
    *,
    name: str,
    region: str,
    registry: str = DEFAULT_REGISTRY,
    registry_keys: Path | None = None,
    machine_ipv4_pool: str = DEFAULT_POOL,
    egress: bool = True,
    peers: Sequence[str] = (),
    netns_pool: int = DEFAULT_NETNS_POOL,
) -> LocalAgent:
    """The host's runtime prepared (networking, rules), then the agent, which re-adopts what ran before.
    `peers`: the other hosts of the private network, `ADDRESS=POOL` each (runtime/runc/peers.py)."""
    tokens = RegistryTokens(registry_keys or data_dir / "registry")
    images = ImageStore(
        data_dir / "images",
        registries=(registry,),
        gate=RegistryGate(allowed_registries((registry,), {}), EmbeddedAccess(registry, tokens)),
    )
    runtime = RuncRuntime(
        data_dir / "runtime",
        images,
        ipv4_pool=machine_ipv4_pool,
        egress=egress,
        netns_pool=netns_pool,
        peers=[parse_peer(p) for p in peers],
    )
    try:
        await runtime.prepare_host()
        volumes = LoopVolumeBackend(data_dir / "volumes")
        return await LocalAgent.open(runtime, volumes, data_dir / "runtime", name=name, region=region)
    except BaseException:
        await runtime.close()
        raise
