"""The ASGI application: Fly's Machines API v1 over a ControlPlane."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from aerodrome.api import errors, graphql
from aerodrome.api.bodies import BodyLimitMiddleware
from aerodrome.api.limits import ApiLimits
from aerodrome.api.responses import JSONResponse
from aerodrome.api.routes import actions, apps, certificates, ips, leases, machines, platform, secrets, volumes
from aerodrome.control import ControlPlane
from aerodrome.core import AerodromeError


async def health(request: Request) -> Response:
    return JSONResponse({"ok": True})


def build_routes(extra: list[BaseRoute] | None = None) -> list[BaseRoute]:
    return [
        Route("/health", health, methods=["GET"]),
        *apps.routes,
        *machines.routes,
        *actions.routes,
        *leases.routes,
        *volumes.routes,
        *secrets.routes,
        *platform.routes,
        *ips.routes,
        *certificates.routes,
        *graphql.routes,
        *(extra or []),
    ]


def build_app(
    plane: ControlPlane, extra_routes: list[BaseRoute] | None = None, limits: ApiLimits | None = None
) -> Starlette:
    """The API application; the server owns the plane's start and close (and the listener's limits: see
    `guarded_protocol`)."""
    limits = limits or ApiLimits()
    app = Starlette(
        routes=build_routes(extra_routes),
        middleware=[Middleware(BodyLimitMiddleware, limits=limits)],
        exception_handlers={
            AerodromeError: errors.aerodrome_error,
            HTTPException: errors.http_error,
            ClientDisconnect: errors.client_gone,
            OSError: errors.os_error,  # handled, not re-raised as `Exception` is: a full disk is no crash
            Exception: errors.unexpected_error,
        },
    )
    app.state.plane = plane
    app.state.limits = limits
    return app
