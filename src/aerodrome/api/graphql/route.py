"""`POST /graphql`: the GraphQL endpoint flyctl and the docs' curl examples call, beside the REST API.

Replies are HTTP 200 whatever the outcome, as GraphQL servers answer, except for a body that is not a GraphQL
request or a document over the limits (400) and a body over its limit (413). The caller is authenticated from
the headers before the body is read. An unknown or missing token is a GraphQL error with code `UNAUTHORIZED`, the
form fly-go's `IsNotAuthenticatedError` recognises, rather than a bare 401 that its GraphQL client reports as a
transport error.
"""

from __future__ import annotations

import json
from typing import Any

from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aerodrome.api.context import authenticate
from aerodrome.api.graphql.limits import DocumentRefusedError, bounded_document
from aerodrome.api.graphql.resolvers import Context
from aerodrome.api.graphql.schema import error_body, execute, format_error
from aerodrome.api.limits import ApiLimits
from aerodrome.api.responses import JSONResponse
from aerodrome.control import ControlPlane
from aerodrome.core import UnauthenticatedError


def _bad_request(message: str) -> Response:
    return JSONResponse({"error": message, "errors": [error_body(message, "BAD_REQUEST")]}, status_code=400)


async def graphql_endpoint(request: Request) -> Response:
    plane: ControlPlane = request.app.state.plane
    limits: ApiLimits = request.app.state.limits
    try:
        caller = await authenticate(request)
    except UnauthenticatedError:
        return JSONResponse(
            {"data": None, "errors": [error_body("You must be authenticated to view this.", "UNAUTHORIZED")]}
        )
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
    try:
        document = bounded_document(payload["query"], limits)
    except DocumentRefusedError as exc:
        return _bad_request(str(exc))
    except GraphQLError as exc:  # a syntax error: GraphQL's own reply, as before
        return JSONResponse({"data": None, "errors": [format_error(exc)]})
    org = await plane.store.get_org(caller.org_slug)
    assert org is not None  # a token exists only for an existing organisation
    return JSONResponse(await execute(Context(plane, caller, org), document, variables, operation_name or None))


routes = [Route("/graphql", graphql_endpoint, methods=["POST"])]
