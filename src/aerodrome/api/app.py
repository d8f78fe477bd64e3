"""The ASGI application: Fly's Machines API v1 over a ControlPlane."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from aerodrome.api import errors, graphql, metrics
from aerodrome.api.bodies import BodyLimitMiddleware
from aerodrome.api.limits import ApiLimits
from aerodrome.api.metrics import ApiMetrics, MetricsMiddleware, MetricSource
from aerodrome.api.request_id import RequestIdMiddleware
from aerodrome.api.responses import JSONResponse
from aerodrome.api.routes import (
    actions,
    apps,
    certificates,
    ips,
    leases,
    logs,
    machines,
    platform,
    registry,
    secretkeys,
    secrets,
    token_checks,
    uiex,
    volumes,
)
from aerodrome.control import ControlPlane
from aerodrome.core import AerodromeError

#: A part of the daemon `/health` reports on: None while it serves, else why it does not.
HealthCheck = Callable[[], str | None]


async def health(request: Request) -> Response:
    """200 while every part serves; 503 naming the parts that are down (the API answering is the API's part)."""
    checks: Mapping[str, HealthCheck] = request.app.state.health
    problems = {name: problem for name, check in checks.items() if (problem := check()) is not None}
    parts = {"api": "up", **{name: "down" if name in problems else "up" for name in checks}}
    if not problems:
        return JSONResponse({"ok": True, "parts": parts})
    message = "; ".join(f"{name} is down: {problem}" for name, problem in problems.items())
    return JSONResponse({"ok": False, "error": message, "parts": parts, "problems": problems}, status_code=503)


def build_routes(extra: list[BaseRoute] | None = None) -> list[BaseRoute]:
    return [
        Route("/health", health, methods=["GET"]),
        *metrics.routes,
        *apps.routes,
        *machines.routes,
        *actions.routes,
        *leases.routes,
        *logs.routes,
        *volumes.routes,
        *secrets.routes,
        *secretkeys.routes,
        *platform.routes,
        *token_checks.routes,
        *ips.routes,
        *certificates.routes,
        *graphql.routes,
        *uiex.routes,
        *registry.routes,
        *(extra or []),
    ]


def build_app(
    plane: ControlPlane,
    extra_routes: list[BaseRoute] | None = None,
    limits: ApiLimits | None = None,
    health_checks: Mapping[str, HealthCheck] | None = None,
    metric_sources: list[MetricSource] | None = None,
) -> Starlette:
    """The API application; the server owns the plane's start and close (and the listener's limits: see
    `guarded_protocol`). `health_checks` are the other parts `/health` reports on (e.g. the registry);
    `metric_sources` add to `/metrics` what the API itself does not see (the edge, machines, volumes)."""
    limits = limits or ApiLimits()
    api_metrics = ApiMetrics()
    app = Starlette(
        routes=build_routes(extra_routes),
        middleware=[
            Middleware(RequestIdMiddleware),
            Middleware(MetricsMiddleware, metrics=api_metrics),
            Middleware(BodyLimitMiddleware, limits=limits),
        ],
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
    app.state.health = dict(health_checks or {})
    app.state.api_metrics = api_metrics
    app.state.metric_sources = list(metric_sources or [])
    return app
