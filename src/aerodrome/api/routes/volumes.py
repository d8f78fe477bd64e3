"""`/v1/apps/{app}/volumes`: create, list, get, update, delete, extend, snapshots."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aerodrome.api import render
from aerodrome.api.context import Call
from aerodrome.api.responses import JSONResponse
from aerodrome.core import Volume


async def _render(call: Call, volume: Volume) -> dict[str, object]:
    status = call.plane.hosts.host_status(volume.host)
    # a volume of a host out of reach is shown without its usage, not refused
    usage = await call.plane.volumes.usage(volume) if volume.state != "destroyed" and status == "ok" else None
    return render.volume(volume, usage, host_status=status)


async def create_volume(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    body = await call.body()
    region = call.plane.machines.region_for(body.get("region"))
    volume = await call.plane.volumes.create(app, body, region)
    return JSONResponse(await _render(call, volume))


async def list_volumes(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    volumes = await call.plane.volumes.list(app)
    if call.query_bool("summary"):
        return JSONResponse([render.volume(v) for v in volumes])
    return JSONResponse([await _render(call, v) for v in volumes])


async def get_volume(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    return JSONResponse(await _render(call, await call.plane.volumes.get(app, request.path_params["volume_id"])))


async def update_volume(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    volume = await call.plane.volumes.update(app, request.path_params["volume_id"], await call.body())
    return JSONResponse(await _render(call, volume))


async def delete_volume(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    volume = await call.plane.volumes.delete(app, request.path_params["volume_id"])
    return JSONResponse(render.volume(volume))


async def extend_volume(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    body = await call.body()
    volume, needs_restart = await call.plane.volumes.extend(app, request.path_params["volume_id"], body.get("size_gb"))
    return JSONResponse({"volume": await _render(call, volume), "needs_restart": needs_restart})


async def create_snapshot(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    snapshot = await call.plane.volumes.snapshot(app, request.path_params["volume_id"])
    return JSONResponse(render.snapshot(snapshot))


async def list_snapshots(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    snapshots = await call.plane.volumes.snapshots(app, request.path_params["volume_id"])
    return JSONResponse([render.snapshot(s) for s in snapshots])


async def list_org_volumes(request: Request) -> Response:
    call = await Call.of(request)
    org_slug = call.own_org()
    include_deleted = call.query_bool("include_deleted")
    volumes: list[Volume] = []
    for app in await call.plane.apps.list(call.caller, org_slug):
        if include_deleted:
            volumes += await call.plane.store.list_volumes(app.name, include_destroyed=True)
        else:
            volumes += await call.plane.volumes.list(app)
    page, next_cursor = _org_page(call, sorted(volumes, key=lambda v: v.id))
    return JSONResponse(
        {"volumes": [{**render.volume(v), "app_name": v.app_name} for v in page], "next_cursor": next_cursor}
    )


def _org_page(call: Call, volumes: list[Volume]) -> tuple[list[Volume], str]:
    """`region`, `state` (comma-joined) and the id `cursor` of the previous page; `limit` at most 1000."""
    region, states = call.request.query_params.get("region"), set(call.query_list("state"))
    cursor = call.request.query_params.get("cursor") or ""
    limit = min(max(call.query_int("limit", 1000), 1), 1000)
    wanted = [
        v for v in volumes if (not region or v.region == region) and (not states or v.state in states) and v.id > cursor
    ]
    return wanted[:limit], wanted[limit - 1].id if len(wanted) > limit else ""


_V = "/v1/apps/{app_name}/volumes"
routes = [
    Route(_V, create_volume, methods=["POST"]),
    Route(_V, list_volumes, methods=["GET"]),
    Route(f"{_V}/{{volume_id}}", get_volume, methods=["GET"]),
    Route(f"{_V}/{{volume_id}}", update_volume, methods=["PUT"]),
    Route(f"{_V}/{{volume_id}}", delete_volume, methods=["DELETE"]),
    Route(f"{_V}/{{volume_id}}/extend", extend_volume, methods=["PUT"]),
    Route(f"{_V}/{{volume_id}}/snapshots", create_snapshot, methods=["POST"]),
    Route(f"{_V}/{{volume_id}}/snapshots", list_snapshots, methods=["GET"]),
    Route("/v1/orgs/{org_slug}/volumes", list_org_volumes, methods=["GET"]),
]
