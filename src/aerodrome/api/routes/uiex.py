"""flyctl's third API (`FLY_UIEX_BASE_URL`, api.fly.io/api/v1): releases, organisations and build tracking.

Its shapes are flyctl's `internal/uiex` types: a release is `{id, version, stable, in_progress, status, strategy,
user, created_at, image_ref}`; creating one answers `{"release": …}`, updating one the release itself.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aerodrome.api.context import Call
from aerodrome.api.responses import JSONResponse
from aerodrome.control import Build
from aerodrome.core import InvalidArgumentError, NotFoundError, Organization, Release, parse_text

JSON = dict[str, object]


def release_view(release: Release) -> JSON:
    return {
        "id": release.id,
        "version": release.version,
        "stable": release.status == "complete",
        "in_progress": release.status in ("pending", "running"),
        "status": release.status,
        "strategy": release.strategy,
        "user": release.user,
        "created_at": release.created_at,
        "image_ref": release.image_ref,
        "reason": release.reason,
        "description": release.description,
    }


def organization_view(org: Organization) -> JSON:
    return {
        "id": org.id,
        "internal_numeric_id": org.internal_numeric_id,
        "slug": org.slug,
        "raw_slug": org.slug,
        "name": org.name,
        "personal": org.slug == "personal",
        # no billing or remote builders here: Fly's answers for an organisation without them
        "paid_plan": False,
        "billable": False,
        "billing_status": "CURRENT",
        "provisions_beta_extensions": False,
        "remote_builder_image": "",
    }


async def create_release(request: Request) -> Response:
    call = await Call.of(request)
    body = await call.body()
    app = await call.plane.apps.get(call.caller, str(body.get("app_name") or ""))
    image = parse_text(body.get("image") or "", "image", 1024)
    strategy = body.get("strategy") or ""
    if not isinstance(strategy, str) or len(strategy) > 32:
        raise InvalidArgumentError("invalid strategy")
    release = await call.plane.releases.create(
        app, image=image, strategy=strategy, user=call.caller.name or call.caller.id, status="pending"
    )
    return JSONResponse({"release": release_view(release)}, status_code=201)


async def update_release(request: Request) -> Response:
    call = await Call.of(request)
    body = await call.body()
    release_id = str(request.path_params["release_id"])
    release = await call.plane.releases.update(
        call.caller.org_slug, release_id, body.get("status"), body.get("metadata"), app_name=call.caller.app_name
    )
    return JSONResponse(release_view(release))


async def list_releases(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    listed = await call.plane.releases.list(app, call.query_int("limit", 25))
    return JSONResponse({"releases": [release_view(r) for r in listed]})


async def current_release(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    current = await call.plane.releases.current(app)
    if current is None:
        raise NotFoundError(f"app {app.name!r} has no release")  # flyctl reads 404 as "none yet"
    return JSONResponse(release_view(current))


async def all_current(request: Request) -> Response:
    call = await Call.of(request)
    times: JSON = {}
    for app in await call.plane.apps.list(call.caller, call.caller.org_slug):
        current = await call.plane.releases.current(app)
        if current is not None:
            times[app.name] = current.created_at
    return JSONResponse(times)


def _build_view(build: Build) -> JSON:
    return {"id": build.id, "status": build.status, "wallclock_time_ms": build.wallclock_time_ms}


async def create_build(request: Request) -> Response:
    """flyctl's CreateBuild (`{app_name, builder_type, strategies_available}`) before it resolves an image; 200."""
    call = await Call.of(request)
    body = await call.body()
    app = await call.plane.apps.get(call.caller, str(body.get("app_name") or ""))
    return JSONResponse(_build_view(call.plane.builds.create(app)))


async def finish_build(request: Request) -> Response:
    call = await Call.of(request)
    body = await call.body()
    app = await call.plane.apps.get(call.caller, str(body.get("app_name") or ""))
    return JSONResponse(_build_view(call.plane.builds.finish(app, body.get("build_id"), body.get("status"))))


async def get_organization(request: Request) -> Response:
    call = await Call.of(request)
    call.own_org()
    return JSONResponse(organization_view(await call.org()))


async def list_organizations(request: Request) -> Response:
    call = await Call.of(request)
    return JSONResponse({"organizations": [organization_view(await call.org())]})


routes = [
    Route("/api/v1/releases", create_release, methods=["POST"]),
    Route("/api/v1/releases/all_current", all_current, methods=["GET"]),
    Route("/api/v1/releases/{release_id}", update_release, methods=["PATCH"]),
    Route("/api/v1/apps/{app_name}/releases", list_releases, methods=["GET"]),
    Route("/api/v1/apps/{app_name}/releases/current", current_release, methods=["GET"]),
    Route("/api/v1/builds", create_build, methods=["POST"]),
    Route("/api/v1/builds/finish", finish_build, methods=["POST"]),
    Route("/api/v1/organizations", list_organizations, methods=["GET"]),
    Route("/api/v1/organizations/{org_slug}", get_organization, methods=["GET"]),
]
