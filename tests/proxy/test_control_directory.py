"""`ControlDirectory` in-process, over a real SQLite store and the control plane's machines: what the edge routes
to, what autostop walks, and the ports a dedicated address binds. Nothing here starts a machine."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from aerodrome.control import ControlPlane
from aerodrome.core import App, Machine, MachineEvent, MachineState, NotFoundError, rfc3339, ulid
from aerodrome.proxy.control_directory import ControlDirectory
from aerodrome.store import SqlStore
from tests.support.fake_agent import FakeAgent

NOW = rfc3339(1_700_000_000)
WEB = {"internal_port": 8080, "ports": [{"port": 80}, {"port": 443}], "autostop": "stop"}
DB = {"internal_port": 5432, "ports": [{"port": 5432}]}


@dataclasses.dataclass
class World:
    store: SqlStore
    plane: ControlPlane
    directory: ControlDirectory

    async def app(self, name: str, status: str = "deployed") -> App:
        app = App(ulid(), name, "personal", "default", len(name), NOW, status)
        await self.store.add_app(app)
        return app

    async def machine(self, app: str, state: MachineState, *services: dict[str, Any], **fields: Any) -> Machine:
        machine = Machine(
            id=ulid().lower()[:14],
            app_name=app,
            name="m",
            region=fields.pop("region", "iad"),
            state=state,
            instance_id=ulid(),
            config={"image": "busybox", "services": list(services), **fields.pop("config", {})},
            private_ip="fdaa::2",
            image_ref={},
            created_at=NOW,
            updated_at=NOW,
            private_ipv4=fields.pop("private_ipv4", "172.30.0.2"),
            **fields,
        )
        await self.store.add_machine(machine, MachineEvent(ulid(), machine.id, "launch", state.value, "user", 0))
        return machine


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    store = SqlStore.open_sqlite(tmp_path / "aerodrome.db")
    await store.ensure_org("personal", "Personal")
    plane = ControlPlane(store, FakeAgent(), Fernet.generate_key())  # nothing here reaches a host
    try:
        yield World(store, plane, ControlDirectory(store, plane.edge_power, domain="apps.test."))
    finally:
        await store.close()


def test_app_names_from_hosts(world: World) -> None:
    directory = world.directory
    assert directory.app_name_for("web.apps.test", "127.0.0.1") == "web"
    assert directory.app_name_for("WEB.apps.test.:8080", "127.0.0.1") == "web"
    for host in (None, "", "apps.test", ".apps.test", "a.b.apps.test", "web.other.test", "[::1]:80"):
        assert directory.app_name_for(host, "127.0.0.1") is None, host


def test_custom_hostnames_and_dedicated_addresses_win(world: World) -> None:
    hostnames, dedicated = {"www.example.com": "shop"}.get, {"10.9.0.1": "db"}.get
    directory = ControlDirectory(
        world.store, world.plane.edge_power, domain="apps.test.", dedicated=dedicated, hostnames=hostnames
    )
    assert directory.app_name_for("www.example.com:443", "127.0.0.1") == "shop"
    assert directory.app_name_for("web.apps.test", "10.9.0.1") == "db"  # the address decides, whatever the host
    assert directory.app_name_for(None, "10.9.0.1") == "db"


async def test_a_route_lists_the_machines_serving_the_port(world: World) -> None:
    await world.app("web")
    served = await world.machine("web", MachineState.STARTED, WEB, DB, region="ams")
    stopped = await world.machine("web", MachineState.STOPPED, WEB, private_ipv4="")
    await world.machine("web", MachineState.STARTED, DB)
    for gone in (MachineState.DESTROYED, MachineState.DESTROYING, MachineState.LAUNCH_FAILED):
        await world.machine("web", gone, WEB)
    await world.machine("web", MachineState.STARTED, WEB, cordoned=True)
    route = await world.directory.route("web.apps.test", "127.0.0.1", 80)
    assert route is not None and (route.app, route.edge_port) == ("web", 80)
    by_id = {b.machine_id: b for b in route.backends}
    assert set(by_id) == {served.id, stopped.id}
    assert (by_id[served.id].address, by_id[served.id].region) == ("172.30.0.2", "ams")
    assert by_id[served.id].service.internal_port == 8080 and by_id[served.id].state is MachineState.STARTED
    assert by_id[stopped.id].address == "fdaa::2"  # no IPv4: the private IPv6
    db = await world.directory.route("web.apps.test", "127.0.0.1", 5432)
    assert db is not None and len(db.backends) == 2
    assert await world.directory.route("web.apps.test", "127.0.0.1", 8080) is None  # internal, not a service port


async def test_a_standby_is_not_routed_to(world: World) -> None:
    await world.app("ha")
    primary = await world.machine("ha", MachineState.STARTED, WEB)
    await world.machine("ha", MachineState.STOPPED, WEB, config={"standbys": [primary.id]})
    route = await world.directory.route("ha.apps.test", "127.0.0.1", 80)
    assert route is not None and [b.machine_id for b in route.backends] == [primary.id]


async def test_no_route_to_unknown_deleting_or_empty_apps(world: World) -> None:
    await world.app("going", "destroying")
    await world.machine("going", MachineState.STARTED, WEB)
    await world.app("empty")
    for host in ("going.apps.test", "empty.apps.test", "nobody.apps.test", "elsewhere.test"):
        assert await world.directory.route(host, "127.0.0.1", 80) is None, host


async def test_autostop_routes_cover_every_autostop_port_of_live_machines(world: World) -> None:
    await world.app("web")
    await world.app("db")
    idle = await world.machine("web", MachineState.STARTED, WEB)
    await world.machine("db", MachineState.STARTED, DB)  # autostop off: never walked
    routes = await world.directory.autostop_routes()
    assert sorted((r.app, r.edge_port) for r in routes) == [("web", 80), ("web", 443)]
    assert all([b.machine_id for b in r.backends] == [idle.id] for r in routes)


async def test_service_ports_of_an_app(world: World) -> None:
    await world.app("web")
    await world.machine("web", MachineState.STARTED, WEB)
    await world.machine("web", MachineState.STOPPED, DB)
    assert await world.directory.service_ports("web") == {80, 443, 5432}
    assert await world.directory.service_ports("nobody") == set()


async def test_services_are_read_again_for_a_new_version(world: World) -> None:
    await world.app("web")
    machine = await world.machine("web", MachineState.STARTED, WEB)
    assert await world.directory.route("web.apps.test", "", 80) is not None
    moved = dataclasses.replace(machine, instance_id=ulid(), config={"image": "busybox", "services": [DB]})
    await world.store.save_machine(moved, new_version=True)
    assert await world.directory.route("web.apps.test", "", 80) is None
    assert await world.directory.route("web.apps.test", "", 5432) is not None


async def test_starting_a_started_machine_is_no_error_and_unknown_apps_are_not_found(world: World) -> None:
    app = await world.app("web")
    machine = await world.machine("web", MachineState.STARTED, WEB)
    await world.directory.start_machine(app.name, machine.id)  # another request woke it first
    assert (await world.store.get_machine(machine.id)).state is MachineState.STARTED  # type: ignore[union-attr]
    await world.app("going", "destroying")
    for name in ("nobody", "going"):
        with pytest.raises(NotFoundError, match=f"app '{name}' not found"):
            await world.directory.start_machine(name, machine.id)
        with pytest.raises(NotFoundError):
            await world.directory.stop_machine(name, machine.id, suspend=False)
