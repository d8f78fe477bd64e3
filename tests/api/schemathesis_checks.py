"""A Schemathesis check for every run against aerodrome: each refusal is in Fly's error shape."""

from __future__ import annotations

import json
from typing import Any

import schemathesis


@schemathesis.check
def fly_error_shape(ctx: Any, response: Any, case: Any) -> None:
    """A refusal is `{"error": "<text>"}` (with Fly's optional `status`), and never echoes a huge input."""
    if not 400 <= response.status_code < 500:
        return
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"a {response.status_code} without a JSON body: {response.content[:200]!r}") from None
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        raise AssertionError(f"a {response.status_code} not in Fly's shape: {response.content[:200]!r}")
    if len(body["error"]) > 2000:
        raise AssertionError(f"a {response.status_code} whose error is {len(body['error'])} characters long")
