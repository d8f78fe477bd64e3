"""What every dashboard handler is given, and the wrappers that sign a request in and check its CSRF token."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from aerodrome.api.errors import error_response, status_of
from aerodrome.control import ControlPlane
from aerodrome.core import AerodromeError, App, Token, UnauthenticatedError
from aerodrome.dashboard.sessions import CSRF_FIELD, Session, csrf_ok

if TYPE_CHECKING:
    from aerodrome.dashboard.site import Dashboard

ROOT = "/dashboard"
TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass
class View:
    """A signed-in request: the plane, the caller's token, the session, and the page helpers."""

    dashboard: Dashboard
    request: Request
    session: Session
    caller: Token

    @property
    def plane(self) -> ControlPlane:
        return self.dashboard.plane

    async def app(self) -> App:
        return await self.plane.apps.get(self.caller, self.request.path_params["app_name"])

    def render(self, template: str, status: int = 200, **context: Any) -> Response:
        return render(self.session, template, status, org=self.caller.org_slug, **context)

    def back(self, path: str, kind: str = "", text: str = "") -> Response:
        """303 to a dashboard page (Post/Redirect/Get), with a message shown there once."""
        if text:
            self.session.say(kind or "ok", text)
        return RedirectResponse(f"{ROOT}{path}", status_code=303)

    async def form(self) -> dict[str, str]:
        return {k: v for k, v in (await self.request.form()).items() if isinstance(v, str) and k != CSRF_FIELD}


def render(session: Session, template: str, status: int = 200, **context: Any) -> Response:
    html = TEMPLATES.get_template(template).render(
        root=ROOT, csrf=session.csrf, flash=session.take_flash(), orgs=sorted(session.tokens), **context
    )
    return HTMLResponse(html, status_code=status)


Handler = Callable[[View], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def page(dashboard: Dashboard, handler: Handler) -> Endpoint:
    """A GET: signed in, or sent to the sign-in page (a failed lookup is the page of the error, same message)."""

    async def endpoint(request: Request) -> Response:
        session = dashboard.codec.load(request)
        response = await _signed_in(dashboard, request, session, handler, on_error=_error_page)
        dashboard.codec.save(session, response)
        return response

    return endpoint


def action(dashboard: Dashboard, handler: Handler) -> Endpoint:
    """A POST: refused (403, Fly's error shape) without the session's CSRF token, before anything else."""

    async def endpoint(request: Request) -> Response:
        session = dashboard.codec.load(request)
        if not await csrf_ok(request, session):
            return error_response(403, "missing or wrong CSRF token: reload the page and try again")
        response = await _signed_in(dashboard, request, session, handler, on_error=_error_back)
        dashboard.codec.save(session, response)
        return response

    return endpoint


async def _signed_in(
    dashboard: Dashboard,
    request: Request,
    session: Session,
    handler: Handler,
    on_error: Callable[[View, AerodromeError], Response],
) -> Response:
    token = session.token
    if token is None:
        return RedirectResponse(f"{ROOT}/sign-in?next={quote(request.url.path)}", status_code=303)
    try:
        caller = await dashboard.plane.tokens.authenticate(f"Bearer {token}")
    except UnauthenticatedError as exc:
        session.tokens.pop(session.org, None)
        session.org = next(iter(session.tokens), "")
        session.say("error", f"signed out: {exc.message}")
        return RedirectResponse(f"{ROOT}/sign-in", status_code=303)
    view = View(dashboard, request, session, caller)
    dashboard.samples.watch(caller.org_slug)
    try:
        return await handler(view)
    except AerodromeError as exc:
        return on_error(view, exc)


def _error_page(view: View, exc: AerodromeError) -> Response:
    status = status_of(exc)
    return view.render("error.html", status=status, status_code=status, message=exc.message)


def _error_back(view: View, exc: AerodromeError) -> Response:
    """An action the plane refused: back to the page it came from, with the API's own message."""
    view.session.say("error", exc.message)
    referer = view.request.headers.get("referer", "")
    path = referer.partition(ROOT)[2] if ROOT in referer else "/apps"
    return RedirectResponse(f"{ROOT}{path or '/apps'}", status_code=303)
