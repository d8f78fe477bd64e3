"""`/v1/apps/{app}/secrets`: values go in, digests come out (values only with `show_secrets`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aerodrome.api.context import Call
from aerodrome.api.responses import JSONResponse
from aerodrome.core import InvalidArgumentError, Secret


def _secret(call: Call, secret: Secret, show: bool) -> dict[str, object]:
    body: dict[str, object] = {
        "name": secret.name,
        "digest": secret.digest,
        "created_at": secret.created_at,
        "updated_at": secret.updated_at,
    }
    if show:
        body["value"] = call.plane.secrets.reveal(secret)
    return body


async def list_secrets(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    show = call.query_bool("show_secrets")
    await _at_version(call, app.name)
    secrets = [_secret(call, s, show) for s in await call.plane.secrets.list(app.name)]
    return JSONResponse({"secrets": secrets, "version": await call.plane.secrets.version(app.name)})


async def set_secrets(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    values = (await call.body()).get("values")
    if not isinstance(values, dict):
        raise InvalidArgumentError("values is required and must be an object")
    version = await call.plane.secrets.set(app.name, values)
    await call.plane.releases.secrets_changed(app, version)
    secrets = [_secret(call, s, False) for s in await call.plane.secrets.list(app.name)]
    return JSONResponse({"secrets": secrets, "version": version, "Version": version})


async def _at_version(call: Call, app_name: str) -> None:
    """fly-go's `?version=N`: the list as of a change that answered N; a version not reached yet is refused."""
    raw = call.request.query_params.get("version")
    if raw:
        await call.plane.secrets.require_version(app_name, call.query_int("version", 0))


async def get_secret(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    await _at_version(call, app.name)
    secret = await call.plane.secrets.get(app.name, request.path_params["name"])
    return JSONResponse(_secret(call, secret, call.query_bool("show_secrets")))


async def set_secret(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    name = request.path_params["name"]
    value = (await call.body()).get("value")
    if not isinstance(value, str):
        raise InvalidArgumentError("value is required and must be a string")
    version = await call.plane.secrets.set(app.name, {name: value})
    await call.plane.releases.secrets_changed(app, version)
    secret = await call.plane.secrets.get(app.name, name)
    return JSONResponse({**_secret(call, secret, True), "version": version, "Version": version}, status_code=201)


async def delete_secret(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    name = request.path_params["name"]
    await call.plane.secrets.get(app.name, name)
    version = await call.plane.secrets.set(app.name, {name: None})
    await call.plane.releases.secrets_changed(app, version)
    return JSONResponse({"version": version, "Version": version})


_S = "/v1/apps/{app_name}/secrets"
routes = [
    Route(_S, list_secrets, methods=["GET"]),
    Route(_S, set_secrets, methods=["POST"]),
    Route(f"{_S}/{{name}}", get_secret, methods=["GET"]),
    Route(f"{_S}/{{name}}", set_secret, methods=["POST"]),
    Route(f"{_S}/{{name}}", delete_secret, methods=["DELETE"]),
]
