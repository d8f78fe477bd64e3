"""Schemathesis hooks: aim generated requests at real records, so the run reaches past 404s into the handlers."""

from __future__ import annotations

import os
from typing import Any

import schemathesis


@schemathesis.hook
def map_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> dict[str, Any] | None:
    if not path_parameters:
        return path_parameters
    known = {
        "app_name": os.environ["AERODROME_CONFORMANCE_APP"],
        "machine_id": os.environ["AERODROME_CONFORMANCE_MACHINE"],
        "volume_id": os.environ["AERODROME_CONFORMANCE_VOLUME"],
        "org_slug": "personal",
    }
    return {key: known.get(key, value) for key, value in path_parameters.items()}


def _poisoned(value: Any, number: float | int) -> Any:
    """`value` with every number in it replaced by `number` (booleans stay as they are)."""
    if isinstance(value, dict):
        return {key: _poisoned(item, number) for key, item in value.items()}
    if isinstance(value, list):
        return [_poisoned(item, number) for item in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return number
    return value


@schemathesis.hook
def flatmap_body(context: Any, body: Any) -> Any:
    """Besides each generated body, the same body with its numbers far past any 64-bit or sane range: each must be
    a 400, never a 5xx. (NaN and Infinity cannot be sent this way, the transport refuses to encode them: the
    hostile-input tests send them as raw bytes.)"""
    from hypothesis import strategies as st

    variants = [body, *(_poisoned(body, n) for n in (10**30, -(10**30), 1.5e308))]
    return st.sampled_from([v for i, v in enumerate(variants) if i == 0 or v != body])
