"""The dashboard at `/dashboard/`, mounted in the API application: routes, sign-in and sign-out, static files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from aerodrome.api.errors import error_response
from aerodrome.api.metrics import MetricSource
from aerodrome.control import ControlPlane
from aerodrome.core import UnauthenticatedError
from aerodrome.dashboard import actions, pages
from aerodrome.dashboard.live import AppChanges
from aerodrome.dashboard.samples import Samples
from aerodrome.dashboard.sessions import SessionCodec, csrf_ok
from aerodrome.dashboard.view import ROOT, Handler, action, page, render

STATIC = Path(__file__).parent / "static"
MAX_TOKEN_BYTES = 4096


class Dashboard:
    """One per server: the session codec, the metric samples, and the fan-out of the plane's change feed."""

    def __init__(self, plane: ControlPlane, key: bytes, metric_sources: Sequence[MetricSource] = ()) -> None:
        self.plane = plane
        self.codec = SessionCodec(key)
        self.samples = Samples(metric_sources)
        self.changes = AppChanges()
        plane.feed.subscribe(self.changes.machine_changed)

    def routes(self) -> list[BaseRoute]:
        a, m = "/apps/{app_name}", "/apps/{app_name}/machines/{machine_id}"
        gets: list[tuple[str, Handler]] = [
            ("/apps", pages.apps),
            (a, pages.app_page),
            (f"{a}/machines/stream", pages.machine_stream),
            (f"{a}/machines/new", pages.new_machine),
            (m, pages.machine_page),
            (f"{m}/logs/stream", pages.log_stream),
            (f"{m}/destroy", pages.confirm_destroy),
            (f"{a}/volumes", pages.volumes),
            (f"{a}/secrets", pages.secrets),
            ("/tokens", pages.tokens),
            ("/orgs", pages.orgs),
        ]
        posts: list[tuple[str, Handler]] = [
            ("/apps", actions.create_app),
            (f"{a}/delete", actions.delete_app),
            (f"{a}/machines", actions.create_machine),
            (f"{a}/machines/preview", actions.preview_machine),
            (f"{m}/destroy", actions.destroy),
            (f"{m}/exec", actions.exec_),
            (m + "/{action}", actions.lifecycle),
            (f"{a}/volumes", actions.create_volume),
            (f"{a}/volumes/{{volume_id}}/extend", actions.extend_volume),
            (f"{a}/volumes/{{volume_id}}/snapshots", actions.snapshot_volume),
            ("/tokens", actions.create_token),
            ("/tokens/{token_id}/revoke", actions.revoke_token),
            ("/orgs/switch", actions.switch_org),
        ]
        routes: list[BaseRoute] = [
            Route("/", self.home, methods=["GET"]),
            Route("/sign-in", self.sign_in_page, methods=["GET"]),
            Route("/sign-in", self.sign_in, methods=["POST"]),
            Route("/sign-out", self.sign_out, methods=["POST"]),
            *(Route(path, page(self, handler), methods=["GET"]) for path, handler in gets),
            *(Route(path, action(self, handler), methods=["POST"]) for path, handler in posts),
            Mount("/static", StaticFiles(directory=STATIC), name="dashboard-static"),
        ]
        return [
            Route(ROOT, lambda _: RedirectResponse(f"{ROOT}/", status_code=307), methods=["GET"]),
            Mount(ROOT, routes=routes),
        ]

    async def home(self, request: Request) -> Response:
        return RedirectResponse(f"{ROOT}/apps", status_code=303)

    async def sign_in_page(self, request: Request) -> Response:
        session = self.codec.load(request)
        response = render(session, "sign_in.html", title="Sign in", next=_next(request.query_params.get("next")))
        self.codec.save(session, response)
        return response

    async def sign_in(self, request: Request) -> Response:
        """The token is checked as the API checks it; a wrong one is the API's 401 message on the form."""
        session = self.codec.load(request)
        if not await csrf_ok(request, session):
            return error_response(403, "missing or wrong CSRF token: reload the page and try again")
        form = await request.form()
        token = str(form.get("token") or "").strip()
        try:
            if len(token) > MAX_TOKEN_BYTES:
                raise UnauthenticatedError(f"token too long (at most {MAX_TOKEN_BYTES} bytes)")
            caller = await self.plane.tokens.authenticate(f"Bearer {token}" if token else None)
        except UnauthenticatedError as exc:
            session.say("error", exc.message)
            response: Response = render(session, "sign_in.html", 401, title="Sign in", next=_next(None))
        else:
            session.sign_in(caller.org_slug, token)
            self.samples.watch(caller.org_slug)
            response = RedirectResponse(_next(str(form.get("next") or "")), status_code=303)
        self.codec.save(session, response)
        return response

    async def sign_out(self, request: Request) -> Response:
        session = self.codec.load(request)
        if not await csrf_ok(request, session):
            return error_response(403, "missing or wrong CSRF token: reload the page and try again")
        session.sign_out()
        session.say("ok", "signed out")
        response = RedirectResponse(f"{ROOT}/sign-in", status_code=303)
        self.codec.save(session, response)
        return response

    def end_streams(self) -> None:
        """End every live stream: the server's shutdown waits for open responses, and these never end alone."""
        self.changes.close()

    async def close(self) -> None:
        self.end_streams()
        await self.samples.close()


def _next(value: str | None) -> str:
    """Where to go after signing in: a dashboard path only, never another site."""
    if value and value.startswith(f"{ROOT}/") and not value.startswith("//") and "\\" not in value:
        return value
    return f"{ROOT}/apps"
