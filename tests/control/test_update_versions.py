"""An update cut short at each of its moments never leaves the host ahead of the database (the in-memory
FakeAgent, a real SQLite store, no root): the row names the new version before the host is asked for it, so a
host holding the new version while the row names the old one (and a start then running the new spec under the
old version) cannot happen. A restart's recovery then settles the machine at rest on the new version, which
starts; a host that refuses the version puts the row back on the old one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aerodrome.control import ControlPlane, Secrets, Settings
from aerodrome.core import (
    App,
    Deadline,
    ExitInfo,
    HostState,
    InvalidArgumentError,
    MachineState,
    MachineVersionSpec,
    PreparedVersion,
    UnavailableError,
)
from aerodrome.runtime import RegistryTokens
from aerodrome.store import SqlStore, sqlite_url
from tests.store.factories import make_app
from tests.support.fake_agent import FakeAgent

S = MachineState
IMAGE = "registry.local/library/busybox:latest"
UPDATE = {"config": {"image": IMAGE, "env": {"MARK": "two"}}, "skip_launch": True}


class Died(BaseException):
    """The daemon's process ending at this point: nothing after it runs, nothing is caught."""


class CutShort(FakeAgent):
    """A host whose daemon dies at `moment` of an update's calls to it (the host keeps what it did)."""

    moment = ""

    async def stop(
        self, machine_id: str, *, signal: int, timeout: float, key: str, deadline: Deadline
    ) -> ExitInfo | None:
        if self.moment == "before-stop":
            raise Died()
        return await super().stop(machine_id, signal=signal, timeout=timeout, key=key, deadline=deadline)

    async def prepare(self, spec: MachineVersionSpec, *, key: str, deadline: Deadline) -> PreparedVersion:
        if self.moment == "before-prepare":
            raise Died()
        if self.moment == "refused":
            raise InvalidArgumentError("the host refuses this version")
        prepared = await super().prepare(spec, key=key, deadline=deadline)
        if self.moment == "after-prepare":  # made on the host, never answered
            raise Died()
        if self.moment == "agent-died":  # the agent died under the call and its step runner finished it
            raise UnavailableError("the connection to the agent failed during the call: its outcome is unknown")
        return prepared


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    opened = await SqlStore.open(sqlite_url(tmp_path / "aerodrome.db"))
    await opened.ensure_org("personal", "Personal")
    yield opened
    await opened.close()


async def plane_on(store: SqlStore, agent: FakeAgent, tmp_path: Path) -> ControlPlane:
    settings = Settings(volume_check_interval=0)
    plane = ControlPlane(store, agent, Secrets.new_key(), settings, registry_signer=RegistryTokens(tmp_path / "reg"))
    await plane.start()
    return plane


async def started(plane: ControlPlane, app: App) -> str:
    machine = await plane.machines.create(app, 1, {"config": {"image": IMAGE}, "skip_launch": True})
    await plane.machines.start(app, machine.id, None)
    return machine.id


@pytest.mark.parametrize("moment", ["before-stop", "before-prepare", "after-prepare", "agent-died"])
async def test_an_update_cut_short_never_leaves_the_host_ahead_of_the_database(
    store: SqlStore, tmp_path: Path, moment: str
) -> None:
    agent, app = CutShort(), make_app("versions")
    await store.add_app(app)
    first = await plane_on(store, agent, tmp_path)
    try:
        mid = await started(first, app)
        old = (await store.get_machine(mid)).instance_id  # type: ignore[union-attr]
        agent.moment = moment
        with pytest.raises((Died, UnavailableError)):
            await first.machines.update(app, 1, mid, UPDATE, None)
        row, held = await store.get_machine(mid), await agent.status(mid)
        assert row is not None and row.state is S.REPLACING
        new = row.instance_id
        assert new != old and row.config["env"] == {"MARK": "two"}  # the row names the new version first
        assert held.version in (old, new)  # the host holds the old one, or the one the row names
        assert not (held.version == new and row.instance_id == old)
    finally:
        await first.close()

    agent.moment = ""
    second = await plane_on(store, agent, tmp_path)  # the daemon started again: recovery
    try:
        async with second.machines.locked(mid):  # reconciled in the background, under the machine's lock
            row = await store.get_machine(mid)
        assert row is not None and (row.state, row.instance_id) == (S.STOPPED, new)
        assert (await agent.status(mid)).version == new
        assert new in [v.version for v in await store.list_versions(mid)]
        await second.machines.start(app, mid, None)  # the new version, under its own id
        held = await agent.status(mid)
        assert (held.state, held.version) == (HostState.RUNNING, new)
    finally:
        await second.close()


async def test_a_version_the_host_refuses_puts_the_row_back_on_the_old_one(store: SqlStore, tmp_path: Path) -> None:
    agent, app = CutShort(), make_app("refused")
    await store.add_app(app)
    plane = await plane_on(store, agent, tmp_path)
    try:
        mid = await started(plane, app)
        before = await store.get_machine(mid)
        assert before is not None
        agent.moment = "refused"
        with pytest.raises(InvalidArgumentError, match="refuses"):
            await plane.machines.update(app, 1, mid, UPDATE, None)
        row = await store.get_machine(mid)
        assert row is not None
        assert (row.state, row.instance_id, row.config) == (S.STOPPED, before.instance_id, before.config)
        assert (await agent.status(mid)).version == before.instance_id
        assert [v.version for v in await store.list_versions(mid)] == [before.instance_id]
    finally:
        await plane.close()
