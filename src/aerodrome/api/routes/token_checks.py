"""`/v1/tokens/oidc`, `/kms`, `/authenticate` and `/authorize`, as far as they mean something on one's own hosts.

An OIDC token is issued to a machine, on its /.fly/api socket (the request names the machine there); its issuer
publishes the JWKS that verifies it at `/oidc/{org}/.well-known/jwks`, unauthenticated as Fly's is. KMS (Fly's
Petsem) is not run here: refused as Fly refuses an organisation without it. `authenticate` and `authorize`
check a token header the caller holds against this host's tokens.
"""

from __future__ import annotations

import base64
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from aerodrome.api.context import Call
from aerodrome.api.responses import JSONResponse
from aerodrome.control import candidate_tokens, require_app
from aerodrome.core import (
    AerodromeError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    Token,
    UnauthenticatedError,
)

MACHINE_KEY = "fly_machine"  # the scope state's entry naming the machine whose /.fly/api socket a request came on


async def oidc_token(request: Request) -> Response:
    call = await Call.of(request)
    machine_id = request.scope.get("state", {}).get(MACHINE_KEY)
    if not machine_id:
        raise InvalidArgumentError("an OIDC token is issued to a machine: request it on the machine's /.fly/api")
    body = await call.body(required=False)
    machine = await call.plane.store.get_machine(str(machine_id))
    app = await call.plane.store.get_app(machine.app_name) if machine else None
    if machine is None or app is None or app.org_slug != call.caller.org_slug:
        raise NotFoundError("machine not found")
    token = call.plane.oidc.token(await call.org(), app, machine, body.get("aud"))
    return PlainTextResponse(token)


async def kms_token(request: Request) -> Response:
    call = await Call.of(request)
    raise PermissionDeniedError(
        f"KMS is not enabled for organization {call.caller.org_slug!r}: use the app's secret keys "
        "(/v1/apps/{app}/secretkeys) instead"
    )


def _verified(header: str, token: Token) -> dict[str, Any]:
    """Fly's `root.VerifiedToken`: the token's nonce (its id) and caveats (an app, an expiry) as this host has
    them; `permission_token` is its bytes."""
    caveats: list[dict[str, Any]] = []
    if token.app_name is not None:
        caveats.append({"type": "Apps", "body": {"apps": {token.app_name: 31}}})
    if token.expires_at is not None:
        caveats.append({"type": "ValidityWindow", "body": {"not_after": token.expires_at}})
    raw = candidate_tokens(header)[0].removeprefix("fm2_")
    return {
        "header": header,
        "nonce": {"kid": token.id, "proof": False},
        "caveats": {"caveats": caveats},
        "permission_token": list(base64.b64decode(raw + "=" * (-len(raw) % 4), validate=False)),
        "organization": token.org_slug,
    }


async def _check(call: Call, header: object) -> Token:
    if not isinstance(header, str) or not header.strip():
        raise InvalidArgumentError("header is required: the token header to verify")
    try:
        return await call.plane.tokens.authenticate(header)
    except UnauthenticatedError as exc:
        raise InvalidArgumentError(f"token not verified: {exc}") from None


async def authenticate_token(request: Request) -> Response:
    call = await Call.of(request)
    header = (await call.body()).get("header")
    token = await _check(call, header)
    return JSONResponse([_verified(str(header), token)])


async def authorize_token(request: Request) -> Response:
    call = await Call.of(request)
    body = await call.body()
    token = await _check(call, body.get("header"))
    access = body.get("access") or {}
    if not isinstance(access, dict):
        raise InvalidArgumentError("access must be an object")
    org_slug, app_name = access.get("org_slug"), access.get("app_name")
    if org_slug not in (None, "", token.org_slug):
        raise PermissionDeniedError(f"the token does not grant access to organization {org_slug!r}")
    granted: dict[str, Any] = {"orgid": (await call.org()).internal_numeric_id, "action": access.get("action", 0)}
    if app_name:
        try:
            app = await call.plane.apps.get(token, str(app_name))
            require_app(token, app.name)
        except AerodromeError:
            raise PermissionDeniedError(f"the token does not grant access to app {app_name!r}") from None
        granted["appid"] = app.internal_numeric_id
    for key in ("machine", "volume", "feature", "app_feature", "command"):
        if access.get(key):
            granted[key] = access[key]
    return JSONResponse({"access": granted, "verified_token": _verified(str(body["header"]), token)})


async def openid_configuration(request: Request) -> Response:
    org_slug = str(request.path_params["org_slug"])
    if await request.app.state.plane.store.get_org(org_slug) is None:
        raise NotFoundError(f"organization {org_slug!r} not found")
    return JSONResponse(request.app.state.plane.oidc.discovery(org_slug))


async def jwks(request: Request) -> Response:
    org_slug = str(request.path_params["org_slug"])
    if await request.app.state.plane.store.get_org(org_slug) is None:
        raise NotFoundError(f"organization {org_slug!r} not found")
    return JSONResponse(request.app.state.plane.oidc.jwks())


routes = [
    Route("/v1/tokens/oidc", oidc_token, methods=["POST"]),
    Route("/v1/tokens/kms", kms_token, methods=["POST"]),
    Route("/v1/tokens/authenticate", authenticate_token, methods=["POST"]),
    Route("/v1/tokens/authorize", authorize_token, methods=["POST"]),
    Route("/oidc/{org_slug}/.well-known/openid-configuration", openid_configuration, methods=["GET"]),
    Route("/oidc/{org_slug}/.well-known/jwks", jwks, methods=["GET"]),
]
