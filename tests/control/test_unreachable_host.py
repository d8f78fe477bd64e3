"""The control plane against an agent it cannot reach (the in-memory FakeAgent, no root): a call that never
reached the host is a 503-class HostUnreachableError, and the transient state written before it is put back,
so the row still says what the host runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aerodrome.control import ControlPlane, Secrets, Settings
from aerodrome.core import App, HostState, HostUnreachableError, MachineState, UnavailableError
from aerodrome.runtime import RegistryTokens
from aerodrome.store import SqlStore, sqlite_url
from tests.store.factories import make_app
from tests.support.fake_agent import FakeAgent

S = MachineState
IMAGE = "registry.local/library/busybox:latest"


@pytest.fixture
async def plane(tmp_path: Path) -> AsyncIterator[tuple[ControlPlane, FakeAgent, App]]:
    store = await SqlStore.open(sqlite_url(tmp_path / "aerodrome.db"))
    await store.ensure_org("personal", "Personal")
    app = make_app("unreachable")
    await store.add_app(app)
    agent = FakeAgent()
    settings = Settings(volume_check_interval=0)
    plane = ControlPlane(store, agent, Secrets.new_key(), settings, registry_signer=RegistryTokens(tmp_path / "reg"))
    await plane.start()
    try:
        yield plane, agent, app
    finally:
        await plane.close()
        await store.close()


async def started(plane: ControlPlane, app: App) -> str:
    org = await plane.store.get_org(app.org_slug)
    assert org is not None
    machine = await plane.machines.create(
        app, org.internal_numeric_id, {"config": {"image": IMAGE}, "skip_launch": True}
    )
    await plane.machines.start(app, machine.id, None)
    return machine.id


@pytest.mark.parametrize("operation", ["stop", "suspend", "destroy", "update"])
async def test_an_operation_the_host_never_received_leaves_the_machine_as_it_was(
    plane: tuple[ControlPlane, FakeAgent, App], operation: str
) -> None:
    control, agent, app = plane
    mid = await started(control, app)
    before = await control.store.get_machine(mid)
    assert before is not None and before.state is S.STARTED
    agent.reachable = False
    calls = {
        "stop": lambda: control.machines.stop(app, mid, None),
        "suspend": lambda: control.machines.suspend(app, mid, None),
        "destroy": lambda: control.machines.destroy(app, mid, force=True, nonce_=None),
        "update": lambda: control.machines.update(app, 1, mid, {"config": {"image": IMAGE, "env": {"A": "b"}}}, None),
    }
    with pytest.raises(HostUnreachableError) as refused:
        await calls[operation]()
    assert isinstance(refused.value, UnavailableError)  # the API's 503
    after = await control.store.get_machine(mid)
    assert after is not None
    assert (after.state, after.instance_id, after.deleted) == (S.STARTED, before.instance_id, False)
    agent.reachable = True
    assert (await agent.status(mid)).state is HostState.RUNNING  # nothing happened on the host
    await control.machines.stop(app, mid, None)  # and once it is back, the operation goes through
    assert (await control.store.get_machine(mid)).state is S.STOPPED  # type: ignore[union-attr]


async def test_a_start_the_host_never_received_leaves_the_machine_stopped(
    plane: tuple[ControlPlane, FakeAgent, App],
) -> None:
    control, agent, app = plane
    mid = await started(control, app)
    await control.machines.stop(app, mid, None)
    agent.reachable = False
    with pytest.raises(HostUnreachableError):
        await control.machines.start(app, mid, None)
    assert (await control.store.get_machine(mid)).state is S.STOPPED  # type: ignore[union-attr]
