"""`POST /graphql`: the GraphQL endpoint flyctl and the docs' curl examples call, beside the REST API.

Replies are HTTP 200 whatever the outcome, as GraphQL servers answer, except for a body that is not a GraphQL
request (400). An unknown or missing token is a GraphQL error with code `UNAUTHORIZED`, the form fly-go's
`IsNotAuthenticatedError` recognises, rather than a bare 401 that its GraphQL client reports as a transport error.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aerodrome.api.graphql.resolvers import Context
from aerodrome.api.graphql.schema import error_body, execute
from aerodrome.api.responses import JSONResponse
from aerodrome.control import ControlPlane
from aerodrome.core import UnauthenticatedError


def _bad_request(message: str) -> Response:
    return JSONResponse({"errors": [error_body(message, "BAD_REQUEST")]}, status_code=400)


async def graphql_endpoint(request: Request) -> Response:
    try:
        payload: Any = json.loads(await request.body())
    except ValueError as exc:
        return _bad_request(f"invalid JSON body: {exc}")
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        return _bad_request("the body must be a JSON object with a string `query`")
    variables, operation_name = payload.get("variables"), payload.get("operationName")
    if variables is not None and not isinstance(variables, dict):
        return _bad_request("`variables` must be a JSON object")
    if operation_name is not None and not isinstance(operation_name, str):
        return _bad_request("`operationName` must be a string")

    plane: ControlPlane = request.app.state.plane
    try:
        caller = await plane.tokens.authenticate(request.headers.get("authorization"))
    except UnauthenticatedError:
        return JSONResponse(
            {"data": None, "errors": [error_body("You must be authenticated to view this.", "UNAUTHORIZED")]}
        )
    org = await plane.store.get_org(caller.org_slug)
    assert org is not None  # a token exists only for an existing organisation
    return JSONResponse(await execute(Context(plane, caller, org), payload["query"], variables, operation_name or None))


routes = [Route("/graphql", graphql_endpoint, methods=["POST"])]
