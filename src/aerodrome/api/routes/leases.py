"""Leases and metadata of one machine."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aerodrome.api import render
from aerodrome.api.context import Call
from aerodrome.api.responses import JSONResponse
from aerodrome.core import MAX_DESCRIPTION, MAX_LEASE_TTL, InvalidArgumentError, NotFoundError, parse_int, parse_text


async def acquire_lease(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    body = await call.body(required=False)
    ttl = body.get("ttl", request.query_params.get("ttl", 30))  # fly-go sends `?ttl=`, the docs a body
    ttl = parse_int(ttl, "lease ttl", 1, MAX_LEASE_TTL, strings=True)
    description = parse_text(body.get("description") or "", "lease description", MAX_DESCRIPTION)
    lease = await call.plane.machines.acquire_lease(
        app, call.machine_id, ttl=ttl, description=description, owner=_owner(call), nonce_=call.nonce
    )
    return JSONResponse(render.lease(lease), status_code=201)


async def get_lease(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    return JSONResponse(render.lease(await call.plane.machines.get_lease(app, call.machine_id)))


async def release_lease(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    await call.plane.machines.release_lease(app, call.machine_id, call.nonce)
    return JSONResponse({"status": "success", "data": {"ok": True}})


def _owner(call: Call) -> str:
    return f"{call.caller.name or 'token'}@{call.caller.org_slug}"


async def get_metadata(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    return JSONResponse(await call.plane.machines.metadata(app, call.machine_id))


async def replace_metadata(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    body = await call.body()
    metadata = body.get("metadata")
    if not isinstance(metadata, dict):
        raise InvalidArgumentError("metadata is required and must be an object")
    await call.plane.machines.edit_metadata(
        app,
        call.machine_id,
        metadata,
        replace=request.method == "PUT",
        machine_version=body.get("machine_version") or None,
    )
    return Response(status_code=204)


async def get_key(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    key = request.path_params["key"]
    metadata = await call.plane.machines.metadata(app, call.machine_id)
    if key not in metadata:
        raise NotFoundError(f"metadata key {key!r} not found")
    return JSONResponse({"value": metadata[key]})


async def set_key(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    body = await call.body()
    value = body.get("value")
    if not isinstance(value, str):
        raise InvalidArgumentError("value is required and must be a string")
    await call.plane.machines.edit_metadata(app, call.machine_id, {request.path_params["key"]: value})
    return Response(status_code=204)


async def delete_key(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    await call.plane.machines.edit_metadata(app, call.machine_id, {request.path_params["key"]: None})
    return Response(status_code=204)


_M = "/v1/apps/{app_name}/machines/{machine_id}"
routes = [
    Route(f"{_M}/lease", acquire_lease, methods=["POST"]),
    Route(f"{_M}/lease", get_lease, methods=["GET"]),
    Route(f"{_M}/lease", release_lease, methods=["DELETE"]),
    Route(f"{_M}/metadata", get_metadata, methods=["GET"]),
    Route(f"{_M}/metadata", replace_metadata, methods=["PUT", "PATCH"]),
    Route(f"{_M}/metadata/{{key}}", get_key, methods=["GET"]),
    Route(f"{_M}/metadata/{{key}}", set_key, methods=["POST"]),
    Route(f"{_M}/metadata/{{key}}", delete_key, methods=["DELETE"]),
]
