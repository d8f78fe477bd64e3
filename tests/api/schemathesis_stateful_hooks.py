"""Schemathesis hooks for the stateful run: creates get bodies that succeed (a real image and region) in the run's
own app, so the links Schemathesis infers carry real machine and volume ids from each create into the operations
after it. Every 4xx must still be in Fly's error shape."""

from __future__ import annotations

import os
import uuid
from typing import Any

import schemathesis

from tests.api.schemathesis_checks import fly_error_shape  # noqa: F401 - registers the check


def _route(context: Any) -> tuple[str, str]:
    operation = context.operation
    return (operation.method.upper(), operation.path) if operation is not None else ("", "")


@schemathesis.hook
def map_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> dict[str, Any] | None:
    """The app and organisation are the run's own (a created app's response carries no name for a link to take);
    machine, volume and other ids come from the links."""
    if not path_parameters:
        return path_parameters
    known = {"app_name": os.environ["AERODROME_CONFORMANCE_APP"], "org_slug": "personal"}
    return {key: known.get(key, value) for key, value in path_parameters.items()}


@schemathesis.hook
def map_body(context: Any, body: Any) -> Any:
    if not isinstance(body, dict):
        return body
    route = _route(context)
    if route == ("POST", "/apps"):
        return {**body, "app_name": f"stateful-{uuid.uuid4().hex[:10]}", "org_slug": "personal"}
    if route == ("POST", "/apps/{app_name}/machines"):
        image = os.environ["AERODROME_CONFORMANCE_IMAGE"]
        return {"region": "iad", "skip_launch": True, "config": {"image": image}}
    if route == ("POST", "/apps/{app_name}/volumes"):
        return {**body, "name": "data", "region": "iad", "size_gb": 1}
    return body
