"""aerodrome's OpenAPI document: the operations it serves, with Fly's paths and schemas.

`fly-shapes.json` holds the structure of Fly's Machines API (paths, parameters, schemas; no prose).
The document served is that structure narrowed to the routes this server has.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any

from starlette.routing import BaseRoute, Route

from aerodrome import __version__

_PARAM = re.compile(r"\{[^}]+\}")


#: Fields Fly's servers (and fly-go, with pointer types) send as null when unset, which its schemas omit to say.
NULLABLE_FIELDS = {
    "Volume": ("attached_machine_id", "attached_alloc_id"),
    "OrgVolume": ("attached_machine_id", "attached_alloc_id"),
}


@functools.cache
def _shapes() -> dict[str, Any]:
    text = resources.files("aerodrome.api").joinpath("fly-shapes.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    schemas = loaded["components"]["schemas"]
    for schema, fields in NULLABLE_FIELDS.items():
        for field in fields:
            schemas[schema]["properties"][field]["nullable"] = True
    return loaded


def _key(path: str) -> str:
    return _PARAM.sub("{}", path)


def implemented_spec(routes: list[BaseRoute]) -> dict[str, Any]:
    shapes = _shapes()
    fly_paths = {_key(path): (path, ops) for path, ops in shapes["paths"].items()}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not isinstance(route, Route) or not route.path.startswith("/v1/") or not route.methods:
            continue
        fly_path, ops = fly_paths.get(_key(route.path.removeprefix("/v1")), ("", {}))
        for method in sorted(m.lower() for m in route.methods if m != "HEAD"):
            operation = ops.get(method) or _own_operation(route.path)
            paths.setdefault(fly_path or route.path.removeprefix("/v1"), {})[method] = {
                **operation,
                "responses": _described(operation.get("responses") or {"200": {}}),
            }
    return {
        "openapi": "3.0.1",
        "info": {"title": "aerodrome Machines API", "version": __version__},
        "servers": [{"url": "/v1"}],
        "paths": paths,
        "components": shapes["components"],
    }


def _own_operation(path: str) -> dict[str, Any]:
    """An operation of aerodrome's own (Fly's shapes have none): its path parameters, strings, and a 200."""
    names = re.findall(r"{(\w+)}", path)
    parameters = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names]
    return {"parameters": parameters, "responses": {"200": {"description": "OK"}}}


def _described(responses: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI requires a description on every response; the structural copy has none."""
    return {code: {"description": code, **_json_errors(body)} for code, body in responses.items()}


def _json_errors(body: dict[str, Any]) -> dict[str, Any]:
    """Fly's spec types a few errors (`POST /tokens/oidc`'s 400) `text/plain` with the JSON ErrorResponse schema:
    the body is Fly's JSON error, as on every other route, and so is its type."""
    content = body.get("content") or {}
    plain = content.get("text/plain") or {}
    if plain.get("schema", {}).get("$ref", "").endswith("/ErrorResponse"):
        rest = {kind: media for kind, media in content.items() if kind != "text/plain"}
        return {**body, "content": {**rest, "application/json": plain}}
    return body
