"""`/v1/apps/{app}/machines`: create, list, get, update, destroy, and the org-wide list."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aerodrome.api import render
from aerodrome.api.context import Call
from aerodrome.api.responses import EncodedJSONResponse, JSONResponse
from aerodrome.control import require_org_wide
from aerodrome.core import (
    ContainerStatus,
    HostUnreachableError,
    InvalidArgumentError,
    Machine,
    MachineState,
    UnavailableError,
    WaitTimeoutError,
)

_RENDERED = render.RenderedMachines()  # listings of thousands of machines reuse each one's JSON
_LISTABLE = {"created", "started", "stopped", "suspended", "failed", "destroyed"}
GET_EVENTS = 10  # the newest events a machine's GET shows


def _states(call: Call) -> list[MachineState]:
    states = call.query_list("state")
    unknown = set(states) - _LISTABLE
    if unknown:
        raise InvalidArgumentError(f"invalid state filter: {', '.join(sorted(unknown))}")
    return [MachineState(s) for s in states]


def _host_status(call: Call, machine: Machine) -> str:
    return call.plane.hosts.host_status(machine.host)


async def create_machine(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    await call.limit("create", app.name)
    org = await call.org()
    machine = await call.plane.machines.create(app, org.internal_numeric_id, await call.body())
    await call.plane.releases.machine_changed(app, machine.config)
    events = await call.plane.store.list_events(machine.id, limit=10)
    nonce = machine.lease.nonce if machine.lease else None
    return JSONResponse(render.machine(machine, events, nonce=nonce, host_status=_host_status(call, machine)))


async def list_machines(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    machines = await call.plane.machines.list(
        app,
        include_deleted=call.query_bool("include_deleted"),
        region=request.query_params.get("region") or None,
        states=_states(call),
    )
    wanted = {k[len("metadata.") :]: v for k, v in request.query_params.items() if k.startswith("metadata.")}
    if wanted:
        machines = [m for m in machines if all((m.config.get("metadata") or {}).get(k) == v for k, v in wanted.items())]
    if call.query_bool("summary"):
        return JSONResponse([render.machine_summary(m) for m in machines])
    board, hosts = call.plane.checks, call.plane.hosts
    containers = await _listed_containers(call, machines)
    if call.query_bool("include_leases"):
        status = hosts.host_status
        rendered = [
            render.machine(m, checks=board.results(m.id), host_status=status(m.host), containers=containers.get(m.id))
            for m in machines
        ]
        return JSONResponse([render.with_lease(body, m) for body, m in zip(rendered, machines, strict=True)])
    return EncodedJSONResponse(_RENDERED.listing(machines, board, hosts.host_status, containers))


async def _listed_containers(call: Call, machines: list[Machine]) -> dict[str, tuple[ContainerStatus, ...]]:
    """The containers of the listed multi-container machines, asked of their hosts together."""
    pods = [m for m in machines if m.config.get("containers")]
    found = await asyncio.gather(*[_containers(call, m) for m in pods])
    return {m.id: statuses for m, statuses in zip(pods, found, strict=True) if statuses is not None}


async def get_machine(request: Request) -> Response:
    call = await Call.of(request)
    async with call.plane.store.reading_machine(request.path_params["app_name"], call.machine_id, GET_EVENTS):
        app = await call.app()
        await call.limit("get", call.machine_id)
        machine = await call.plane.machines.find(app, call.machine_id, include_deleted=True)
        events = await call.plane.store.list_events(machine.id, limit=GET_EVENTS)
    containers = await _containers(call, machine)
    checks = call.plane.checks.results(machine.id)
    host_status = _host_status(call, machine)
    body = render.machine(machine, events, checks=checks, host_status=host_status, containers=containers)
    return JSONResponse(render.with_lease(body, machine) if call.query_bool("include_leases") else body)


async def _containers(call: Call, machine: Machine) -> tuple[ContainerStatus, ...] | None:
    """A multi-container machine's containers: their host's view while it runs, none otherwise (or unreachable)."""
    if not machine.config.get("containers"):
        return None
    if machine.state is not MachineState.STARTED:
        return ()
    try:
        return (await call.plane.agent.status(machine.id)).containers
    except (UnavailableError, HostUnreachableError, WaitTimeoutError):
        return ()


async def update_machine(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    await call.limit("update", call.machine_id)
    org = await call.org()
    machine = await call.plane.machines.update(
        app, org.internal_numeric_id, call.machine_id, await call.body(), call.nonce
    )
    await call.plane.releases.machine_changed(app, machine.config)
    events = await call.plane.store.list_events(machine.id, limit=10)
    return JSONResponse(render.machine(machine, events, host_status=_host_status(call, machine)))


async def delete_machine(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    await call.limit("destroy", call.machine_id)
    force = call.query_bool("force") or call.query_bool("kill")
    await call.plane.machines.destroy(app, call.machine_id, force=force, nonce_=call.nonce)
    return JSONResponse({"ok": True})


async def list_org_machines(request: Request) -> Response:
    call = await Call.of(request)
    org_slug = call.own_org()
    require_org_wide(call.caller, "the organization's machines")
    limit = min(max(call.query_int("limit", 1000), 1), 1000)
    machines = await call.plane.store.list_org_machines(
        org_slug,
        include_deleted=call.query_bool("include_deleted"),
        region=request.query_params.get("region") or None,
        states=_states(call),
        updated_after=request.query_params.get("updated_after") or None,
        after_id=request.query_params.get("cursor") or None,
        limit=limit + 1,
    )
    page, more = machines[:limit], len(machines) > limit
    last = page[-1] if page else None
    return JSONResponse(
        {
            "machines": [render.org_machine(m) for m in page],
            "next_cursor": last.id if more and last else "",
            "last_machine_id": last.id if last else "",
            "last_updated_at": last.updated_at if last else "",
            "error_regions": [],
        }
    )


routes = [
    Route("/v1/apps/{app_name}/machines", create_machine, methods=["POST"]),
    Route("/v1/apps/{app_name}/machines", list_machines, methods=["GET"]),
    Route("/v1/apps/{app_name}/machines/{machine_id}", get_machine, methods=["GET"]),
    Route("/v1/apps/{app_name}/machines/{machine_id}", update_machine, methods=["POST", "PUT"]),  # PUT: some SDKs
    Route("/v1/apps/{app_name}/machines/{machine_id}", delete_machine, methods=["DELETE"]),
    Route("/v1/orgs/{org_slug}/machines", list_org_machines, methods=["GET"]),
]
