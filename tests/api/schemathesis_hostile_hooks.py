"""Schemathesis hooks for the hostile run: besides what the conformance hooks aim and vary, every generated JSON
body is also sent as raw bytes poisoned with what a Go client could never write and a hostile one will (NaN,
Infinity, numbers past any float or 64-bit range, huge strings, deep nesting, wrong types); every 4xx must be in
Fly's error shape."""

from __future__ import annotations

import json
from typing import Any

import schemathesis

import tests.api.schemathesis_hooks  # noqa: F401 - its hooks aim requests at real records
from tests.api.schemathesis_checks import fly_error_shape  # noqa: F401 - registers the check

# Number literals Python's json would not write as they are: each replaces every number of a body.
NUMBERS = ("NaN", "Infinity", "-Infinity", "1e400", "-1e400", str(2**70), str(-(2**70)), "1" + "0" * 5000)
HUGE_STRING = "x" * 300_000
DEPTH = 10_000
WRONG_TYPES: tuple[Any, ...] = ([], {}, "x", True, None, 1.5, [[[]]])


def _with_numbers(value: Any, literal: str) -> str:
    """`value` as JSON text with every number written as `literal`."""
    marker = "\u2063number\u2063"

    def mark(item: Any) -> Any:
        if isinstance(item, dict):
            return {key: mark(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return [mark(inner) for inner in item]
        if isinstance(item, int | float) and not isinstance(item, bool):
            return marker
        return item

    return json.dumps(mark(value)).replace(json.dumps(marker), literal)


def _with_strings(value: Any, string: str) -> Any:
    if isinstance(value, dict):
        return {key: _with_strings(inner, string) for key, inner in value.items()}
    if isinstance(value, list):
        return [_with_strings(inner, string) for inner in value]
    return string if isinstance(value, str) else value


def hostile_variants(body: Any) -> list[bytes]:
    """Raw bodies, each one hostile twist of `body`."""
    variants = [
        _with_numbers(body, literal).encode() for literal in NUMBERS if _with_numbers(body, literal) != json.dumps(body)
    ]
    variants.append(json.dumps(_with_strings(body, HUGE_STRING)).encode())
    variants.append(b"[" * DEPTH + b"]" * DEPTH)
    if isinstance(body, dict) and body:
        nested = {key: json.loads("[" * 64 + "]" * 64) for key in body}
        variants.append(json.dumps(nested).encode())
        for wrong in WRONG_TYPES:
            variants.append(json.dumps({key: wrong for key in body}).encode())
    variants += [b"", b"{", b'{"a":1,"a":2}', b"\xff\xfe", json.dumps(body).encode() + b"garbage"]
    return variants


@schemathesis.hook
def flatmap_body(context: Any, body: Any) -> Any:
    from hypothesis import strategies as st

    try:
        json.dumps(body)
    except (TypeError, ValueError):  # raw bytes already, or no body at all
        return st.just(body)
    return st.sampled_from([body, *hostile_variants(body)])
