"""Tokens and platform: `/v1/tokens/current`, the organisation's tokens (`/v1/tokens`: list and create, an
aerodrome extension), `/v1/platform/regions` and `/placements`, and aerodrome's own OpenAPI document."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aerodrome.api.context import Call
from aerodrome.api.openapi import implemented_spec
from aerodrome.api.regions import REGIONS
from aerodrome.api.responses import JSONResponse
from aerodrome.control import hash_token, require_org_wide
from aerodrome.core import InvalidArgumentError, NotFoundError, Token, parse_int, rfc3339

MAX_TOKEN_NAME = 100


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
                    "apps": [] if token.app_name is None else [token.app_name],
                    "user": "",
                    "restricted_to_machine": "",
                    "source_machine_id": "",
                }
            ]
        }
    )


def token_view(token: Token) -> dict[str, object]:
    """A token as listed: never its secret, which is not stored."""
    return {
        "id": token.id,
        "name": token.name,
        "org_slug": token.org_slug,
        "created_at": token.created_at,
        "last_used_at": token.last_used_at,
        "revoked_at": token.revoked_at,
        "revoked": token.revoked_at is not None,
        "app_name": token.app_name,  # a deploy token's one app; null for a token of the whole organisation
        "expires_at": None if token.expires_at is None else rfc3339(token.expires_at),
    }


async def list_tokens(request: Request) -> Response:
    call = await Call.of(request)
    require_org_wide(call.caller, "the organization's tokens")
    org_slug = request.query_params.get("org_slug") or call.caller.org_slug
    if org_slug != call.caller.org_slug:
        raise NotFoundError(f"organization {org_slug!r} not found")
    return JSONResponse({"tokens": [token_view(t) for t in await call.plane.tokens.of_org(org_slug)]})


async def create_token(request: Request) -> Response:
    """Another token of the caller's organisation: its secret is in this reply only."""
    call = await Call.of(request)
    require_org_wide(call.caller, "the organization's tokens")
    body = await call.body(required=False)
    name, org_slug = body.get("name", ""), body.get("org_slug") or call.caller.org_slug
    if not isinstance(name, str) or len(name) > MAX_TOKEN_NAME:
        raise InvalidArgumentError(f"name must be a string of at most {MAX_TOKEN_NAME} characters")
    if org_slug != call.caller.org_slug:
        raise NotFoundError(f"organization {org_slug!r} not found")
    secret = await call.plane.tokens.create(org_slug, name)
    token = await call.plane.store.find_token(hash_token(secret))
    assert token is not None  # just written
    return JSONResponse({**token_view(token), "token": secret}, status_code=201)


async def revoke_token(request: Request) -> Response:
    call = await Call.of(request)
    require_org_wide(call.caller, "the organization's tokens")
    token = await call.plane.tokens.revoke(call.caller.org_slug, str(request.path_params["token_id"]))
    return JSONResponse(token_view(token))


async def regions(request: Request) -> Response:
    await Call.of(request)
    served = request.app.state.plane.settings.regions
    listed = [r for r in REGIONS if served is None or r["code"] in served]
    nearest = request.app.state.plane.settings.default_region
    return JSONResponse({"regions": listed, "nearest": nearest})


async def openapi(request: Request) -> Response:
    return JSONResponse(implemented_spec(request.app.routes))


async def placements(request: Request) -> Response:
    """fly-go's GetPlacements: where `count` machines go. Every region is this host's, so the count is spread over
    the regions asked for (`region`, comma-joined), else the default region, in their order."""
    call = await Call.of(request)
    body = await call.body()
    org_slug = body.get("org_slug") or call.caller.org_slug
    if org_slug != call.caller.org_slug:
        raise NotFoundError(f"organization {org_slug!r} not found")
    count = parse_int(body.get("count") or 0, "count", 0, 10_000)
    raw = body.get("region") or ""
    if not isinstance(raw, str):
        raise InvalidArgumentError("invalid region: must be a string")
    regions = [call.plane.machines.region_for(r.strip()) for r in raw.split(",") if r.strip()] or [
        call.plane.machines.region_for(None)
    ]
    spread = [count // len(regions) + (1 if i < count % len(regions) else 0) for i in range(len(regions))]
    placed = [{"region": r, "count": n, "concurrency": max(n, 1)} for r, n in zip(regions, spread, strict=True)]
    return JSONResponse({"regions": placed})


routes = [
    Route("/v1/platform/placements", placements, methods=["POST"]),
    Route("/v1/tokens/current", current_token, methods=["GET"]),
    Route("/v1/tokens", list_tokens, methods=["GET"]),
    Route("/v1/tokens", create_token, methods=["POST"]),
    Route("/v1/tokens/{token_id}", revoke_token, methods=["DELETE"]),
    Route("/v1/platform/regions", regions, methods=["GET"]),
    Route("/v1/openapi.json", openapi, methods=["GET"]),
]
