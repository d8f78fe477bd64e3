"""The embedded registry's token endpoint (Docker's token spec): the `realm` its 401s send clients to.

`GET /v2/token?service=…&scope=repository:NAME:pull,push` with Basic credentials (any user name, an organisation
token as password; or the host operator's credential) or a Bearer organisation token. `POST` takes OAuth2's
password grant as form fields, as containerd sends it. The reply grants what the policy allows of each scope.
"""

from __future__ import annotations

import base64
import urllib.parse

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aerodrome.api.responses import JSONResponse
from aerodrome.control import ControlPlane
from aerodrome.core import InvalidArgumentError


async def token(request: Request) -> Response:
    plane: ControlPlane = request.app.state.plane
    params = request.query_params
    body = await plane.registry.issue(
        request.headers.get("authorization"), params.get("service"), params.getlist("scope")
    )
    return JSONResponse(body)


async def oauth_token(request: Request) -> Response:
    """OAuth2's form (`grant_type=password&username=…&password=…&scope=…`), where clients send one."""
    plane: ControlPlane = request.app.state.plane
    try:
        form = urllib.parse.parse_qs((await request.body()).decode(errors="replace"), max_num_fields=32)
    except ValueError:
        raise InvalidArgumentError("too many form fields") from None
    authorization = request.headers.get("authorization")
    if not authorization and form.get("password"):
        pair = f"{(form.get('username') or ['x'])[0] or 'x'}:{form['password'][0]}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode()
    body = await plane.registry.issue(authorization, (form.get("service") or [""])[0], form.get("scope") or [])
    return JSONResponse(body)


routes = [
    Route("/v2/token", token, methods=["GET"]),
    Route("/v2/token", oauth_token, methods=["POST"]),
]
