"""The executable schema: Fly's SDL subset (`schema.graphql`) bound to aerodrome's resolvers, and its replies."""

from __future__ import annotations

import functools
import inspect
import logging
from importlib import resources
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    build_schema,
    parse,
    validate,
)
from graphql import execute as execute_document

from aerodrome.api.errors import status_of
from aerodrome.api.graphql import mutations, queries, resolvers
from aerodrome.api.graphql.resolvers import Context
from aerodrome.core import AerodromeError

log = logging.getLogger("aerodrome.api.graphql")

JSON = dict[str, Any]

#: HTTP status of an error kind → the `extensions.code` fly-go tests (`UNAUTHORIZED`, `NOT_FOUND`).
CODE_BY_STATUS = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    408: "TIMEOUT",
    409: "CONFLICT",
    412: "PRECONDITION_FAILED",
    422: "UNPROCESSABLE",
    429: "RATE_LIMITED",
    503: "SERVICE_UNAVAILABLE",
}


@functools.cache
def schema() -> GraphQLSchema:
    """Built once per process; field resolvers are bound on the built types."""
    package = resources.files("aerodrome.api.graphql")
    sdl = package.joinpath("schema.graphql").read_text() + package.joinpath("extensions.graphql").read_text()
    built = build_schema(sdl)
    bound = {**resolvers.FIELD_RESOLVERS, **queries.FIELD_RESOLVERS, **mutations.FIELD_RESOLVERS}
    for (type_name, field_name), resolve in bound.items():
        owner = built.get_type(type_name)
        assert isinstance(owner, GraphQLObjectType), type_name
        owner.fields[field_name].resolve = resolve
    _bind_big_int(built)
    return built


def _bind_big_int(built: GraphQLSchema) -> None:
    """Fly's `BigInt` is a string on the wire (fly-go decodes `internalNumericId` into a Go string); an SDL scalar
    would pass Python's int through as a JSON number."""
    big_int = built.get_type("BigInt")
    assert isinstance(big_int, GraphQLScalarType)
    big_int.serialize = _big_int_text  # type: ignore[method-assign]  # graphql-core 3.2
    big_int.coerce_output_value = _big_int_text  # 3.3 and later


def _big_int_text(value: Any) -> str:
    return str(int(value))


def error_body(message: str, code: str, path: list[str | int] | None = None) -> JSON:
    body: JSON = {"message": message, "extensions": {"code": code}}
    if path is not None:
        body["path"] = path
    return body


def format_error(error: GraphQLError) -> JSON:
    original = error.original_error
    if original is None or isinstance(original, GraphQLError):  # the document or its variables are invalid
        body = error_body(error.message, "GRAPHQL_VALIDATION_FAILED", error.path)
    elif isinstance(original, AerodromeError):
        body = error_body(
            original.message, CODE_BY_STATUS.get(status_of(original), "INTERNAL_SERVER_ERROR"), error.path
        )
    else:
        log.error("GraphQL resolver failed at %s", error.path, exc_info=original)
        body = error_body(f"internal error: {type(original).__name__}", "INTERNAL_SERVER_ERROR", error.path)
    if error.locations:
        body["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    return body


async def execute(
    context: Context, query: str | DocumentNode, variables: JSON | None, operation_name: str | None
) -> JSON:
    """Run one operation; the reply is `{"data": …}` plus `"errors"` when any field failed."""
    try:
        document = parse(query) if isinstance(query, str) else query
    except GraphQLError as error:
        return {"data": None, "errors": [format_error(error)]}
    errors = validate(schema(), document)
    if errors:
        return {"data": None, "errors": [format_error(error) for error in errors]}
    outcome = execute_document(
        schema(), document, context_value=context, variable_values=variables, operation_name=operation_name
    )
    result: ExecutionResult = await outcome if inspect.isawaitable(outcome) else outcome
    reply: JSON = {"data": result.data}
    if result.errors:
        reply["errors"] = [format_error(error) for error in result.errors]
    return reply
