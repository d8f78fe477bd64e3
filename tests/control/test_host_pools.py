"""Hosts' machine pools are cluster-wide: serve refuses two agents whose pools overlap, as their machines would
share 6PN addresses (each holds its IPv4 address in its low 32 bits)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from aerodrome.control import ControlPlane, Secrets, Settings
from aerodrome.core import FailedPreconditionError, HostInfo
from aerodrome.runtime import RegistryTokens
from aerodrome.store import SqlStore, sqlite_url
from tests.support.fake_agent import FakeAgent


class PooledAgent(FakeAgent):
    """A FakeAgent that reports a machine pool, as `aerodrome agent` does."""

    def __init__(self, name: str, pool: str) -> None:
        super().__init__(name)
        self.pool = pool

    async def info(self) -> HostInfo:
        return dataclasses.replace(await super().info(), machine_pool=self.pool, private_network=True)


async def start(tmp_path: Path, *agents: FakeAgent) -> None:
    store = await SqlStore.open(sqlite_url(tmp_path / "aerodrome.db"))
    settings = Settings(volume_check_interval=0, host_check_interval=0)
    plane = ControlPlane(store, list(agents), Secrets.new_key(), settings, registry_signer=RegistryTokens(tmp_path))
    try:
        await plane.start()
    finally:
        await plane.close()
        await store.close()


async def test_hosts_with_pools_of_their_own_are_taken(tmp_path: Path) -> None:
    await start(tmp_path, PooledAgent("host-a", "172.30.0.0/16"), PooledAgent("host-b", "172.31.0.0/16"))


async def test_hosts_with_overlapping_pools_are_refused(tmp_path: Path) -> None:
    a, b = PooledAgent("host-a", "172.30.0.0/16"), PooledAgent("host-b", "172.30.128.0/17")
    with pytest.raises(FailedPreconditionError, match="host-a and host-b have overlapping machine pools"):
        await start(tmp_path, a, b)
