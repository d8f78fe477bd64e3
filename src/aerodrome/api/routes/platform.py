"""Tokens and platform: `/v1/tokens/current`, `/v1/platform/regions`, and aerodrome's own OpenAPI document."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aerodrome.api.context import Call
from aerodrome.api.openapi import implemented_spec
from aerodrome.api.regions import REGIONS
from aerodrome.api.responses import JSONResponse


async def current_token(request: Request) -> Response:
    call = await Call.of(request)
    token = call.caller
    return JSONResponse(
        {
            "tokens": [
                {
                    "token_id": token.id,
                    "org_slug": token.org_slug,
                    "organization": token.org_slug,
                    "apps": [],
                    "user": "",
                    "restricted_to_machine": "",
                    "source_machine_id": "",
                }
            ]
        }
    )


async def regions(request: Request) -> Response:
    await Call.of(request)
    served = request.app.state.plane.settings.regions
    listed = [r for r in REGIONS if served is None or r["code"] in served]
    nearest = request.app.state.plane.settings.default_region
    return JSONResponse({"regions": listed, "nearest": nearest})


async def openapi(request: Request) -> Response:
    return JSONResponse(implemented_spec(request.app.routes))


routes = [
    Route("/v1/tokens/current", current_token, methods=["GET"]),
    Route("/v1/platform/regions", regions, methods=["GET"]),
    Route("/v1/openapi.json", openapi, methods=["GET"]),
]
