"""`/v1/apps`: create, list, get, delete, and an app's deploy tokens."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aerodrome.api import render
from aerodrome.api.context import Call
from aerodrome.api.responses import JSONResponse
from aerodrome.control import token_lifetime
from aerodrome.core import InvalidArgumentError


async def create_app(request: Request) -> Response:
    call = await Call.of(request)
    body = await call.body()
    org_slug = body.get("org_slug") or call.caller.org_slug
    if not isinstance(org_slug, str):
        raise InvalidArgumentError("invalid org_slug")
    app = await call.plane.apps.create(
        call.caller, body.get("app_name") or body.get("name"), org_slug, body.get("network") or ""
    )
    domain = call.plane.settings.app_domain
    return JSONResponse(render.app(app, await call.org(), app_domain=domain), status_code=201)


async def list_apps(request: Request) -> Response:
    call = await Call.of(request)
    org_slug = request.query_params.get("org_slug")
    if not org_slug:
        raise InvalidArgumentError("org_slug is required")
    org = await call.org()
    apps = []
    # no app has a role here, so a role filter (flyctl's remote-builder lookup) matches none rather than all
    listed = [] if request.query_params.get("app_role") else await call.plane.apps.list(call.caller, org_slug)
    for app in listed:
        machines, volumes = await call.plane.store.app_counts(app.name)
        apps.append(render.app(app, org, machines, volumes, app_domain=call.plane.settings.app_domain))
    return JSONResponse({"total_apps": len(apps), "apps": apps})


async def get_app(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app(destroying=True, foreign=True)
    machines, volumes = await call.plane.store.app_counts(app.name)
    return JSONResponse(render.app(app, await call.org(), machines, volumes, app_domain=call.plane.settings.app_domain))


async def delete_app(request: Request) -> Response:
    """202 once the app is durably marked `destroying`: its machines, volumes and addresses go in the background,
    and GET answers 404 when the last of it is gone."""
    call = await Call.of(request)
    app = await call.app(destroying=True)
    await call.limit("delete_app", call.caller.org_slug)
    await call.plane.delete_app(app)
    return Response(status_code=202)


async def create_deploy_token(request: Request) -> Response:
    """Fly's `App_create_deploy_token`: a token that acts on this app only, for `expiry` (20 years if absent)."""
    call = await Call.of(request)
    app = await call.app()
    lifetime = token_lifetime((await call.body(required=False)).get("expiry"))
    secret = await call.plane.tokens.create(
        app.org_slug, f"{app.name} deploy token", app_name=app.name, lifetime=lifetime
    )
    return JSONResponse({"token": f"FlyV1 {secret}"})


routes = [
    Route("/v1/apps", create_app, methods=["POST"]),
    Route("/v1/apps", list_apps, methods=["GET"]),
    Route("/v1/apps/{app_name}", get_app, methods=["GET"]),
    Route("/v1/apps/{app_name}", delete_app, methods=["DELETE"]),
    Route("/v1/apps/{app_name}/deploy_token", create_deploy_token, methods=["POST"]),
]
