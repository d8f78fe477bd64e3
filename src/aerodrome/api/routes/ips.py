"""`/v1/apps/{app}/ip_assignments`: the REST form of IP address allocation (Fly's IPAssignment)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aerodrome.api.context import Call
from aerodrome.api.responses import JSONResponse
from aerodrome.core import InvalidArgumentError, IPAddress, NotFoundError

JSON = dict[str, object]


def assignment(ip: IPAddress) -> JSON:
    return {
        "ip": ip.address,
        "region": ip.region or "global",
        "service_name": ip.service_name,
        "shared": ip.type == "shared_v4",
        "created_at": ip.created_at,
    }


def _text(body: dict[str, object], name: str) -> str:
    value = body.get(name) or ""
    if not isinstance(value, str):
        raise InvalidArgumentError(f"invalid {name}: must be a string")
    return value


async def list_assignments(request: Request) -> Response:
    call = await Call.of(request)
    ips = await call.plane.ips.list(await call.app())
    return JSONResponse({"ips": [assignment(ip) for ip in ips]})


async def create_assignment(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    body = await call.body()
    org_slug = _text(body, "org_slug")
    if org_slug and org_slug != app.org_slug:
        raise NotFoundError(f"organization {org_slug!r} not found")
    ip = await call.plane.ips.allocate(
        app,
        await call.org(),
        _text(body, "type"),
        region=_text(body, "region"),
        network=_text(body, "network"),
        service_name=_text(body, "service_name"),
    )
    return JSONResponse(assignment(ip))


async def delete_assignment(request: Request) -> Response:
    call = await Call.of(request)
    await call.plane.ips.release(await call.app(), address=request.path_params["ip"])
    return Response(status_code=204)


routes = [
    Route("/v1/apps/{app_name}/ip_assignments", list_assignments, methods=["GET"]),
    Route("/v1/apps/{app_name}/ip_assignments", create_assignment, methods=["POST"]),
    Route("/v1/apps/{app_name}/ip_assignments/{ip}", delete_assignment, methods=["DELETE"]),
]
