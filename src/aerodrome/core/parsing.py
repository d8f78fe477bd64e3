"""Request input, parsed once and bounded: JSON bodies, numbers, strings and booleans.

Python's `json` accepts `NaN`, `Infinity` and numbers that overflow to `inf`, and recurses once per nesting
level; Go's `encoding/json` (what Fly's clients and server speak) refuses the first two and decodes into typed
fields. A value that cannot be a finite number, or a body nested deeper than `MAX_DEPTH`, is refused here with
the field it was found in, so nothing further down ever sees it.
"""

from __future__ import annotations

import json
import math
from typing import Any

from aerodrome.core.errors import InvalidArgumentError

MAX_DEPTH = 64  # a MachineConfig nests 6 levels deep (services → ports → http_options → response → headers)

# Bounds on strings, in characters. Docker's reference grammar allows a 255-character repository name, a
# 128-character tag and a digest; Linux allows 128 KiB per argument or environment string (MAX_ARG_STRLEN).
MAX_IMAGE = 4096
MAX_NAME = 255
MAX_KEY = 1024
MAX_VALUE = 128 * 1024
MAX_PATH = 4096
MAX_DESCRIPTION = 4096
MAX_ITEMS = 1024  # entries in env, metadata, argv lists
MAX_LEASE_TTL = 24 * 3600  # seconds a lease may be taken for at once


class _NonFinite:
    """A NaN, an infinity or an overflowing number, as parsed: found by `_check_tree`, which names its field."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _parse_float(text: str) -> float | _NonFinite:
    value = float(text)
    return value if math.isfinite(value) else _NonFinite(text)


def parse_json(raw: bytes | str, *, what: str = "JSON body") -> Any:
    """Parse JSON as Go would: finite numbers only, at most `MAX_DEPTH` levels of arrays and objects."""
    try:
        value = json.loads(raw, parse_constant=_NonFinite, parse_float=_parse_float)
    except RecursionError:
        raise InvalidArgumentError(f"invalid {what}: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, bad UTF-8, an integer of more than 4300 digits
        raise InvalidArgumentError(f"invalid {what}: {exc}") from None
    _check_tree(value, what)
    return value


def _check_tree(value: Any, what: str) -> None:
    """Walk the parsed value without recursion: its depth, and any non-finite number (named by its path)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            children: Any = node.items()
            for key in node:
                _check_unicode(key, path, what)  # named by its object: the key itself cannot be echoed
        elif isinstance(node, list):
            children = enumerate(node)
        else:
            if isinstance(node, _NonFinite):
                raise InvalidArgumentError(f"invalid {field_path(path) or what}: {node.text} is not a finite number")
            if isinstance(node, str):
                _check_unicode(node, path, what)
            continue
        if len(path) >= MAX_DEPTH:
            raise InvalidArgumentError(f"invalid {what}: nested deeper than {MAX_DEPTH} levels")
        stack.extend((child, (*path, key)) for key, child in children)


def _check_unicode(value: str, path: tuple[str | int, ...], what: str) -> None:
    """JSON's `\\ud800` escapes decode to lone surrogates, which no file name, argv or UTF-8 text can hold."""
    if value.isascii():
        return
    try:
        value.encode()
    except UnicodeEncodeError:
        name = field_path(path) or what
        raise InvalidArgumentError(f"invalid {name}: not valid Unicode (a lone surrogate)") from None


def field_path(path: tuple[str | int, ...]) -> str:
    """`("config", "services", 0, "internal_port")` → `config.services[0].internal_port`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def parse_int(value: object, field: str, low: int, high: int, *, strings: bool = False) -> int:
    """An integer within [low, high]; integral floats (`30.0`) pass, and numeric strings when `strings`."""
    number: object = value
    if strings and isinstance(value, str):
        try:
            number = float(value.strip()) if len(value) <= 32 else math.nan
        except ValueError:
            number = math.nan
    if isinstance(number, float) and math.isfinite(number):
        if not number.is_integer():
            raise InvalidArgumentError(f"invalid {field}: {shown(value)} is not a whole number")
        number = int(number)
    if isinstance(number, bool) or not isinstance(number, int):
        raise InvalidArgumentError(f"invalid {field}: {shown(value)} is not a number")
    if not low <= number <= high:
        raise InvalidArgumentError(f"invalid {field}: {shown(number)} must be between {low} and {high}")
    return number


def parse_text(value: object, field: str, max_len: int, *, required: bool = False) -> str:
    """A string of at most `max_len` characters, without NUL (no C string, argv or path can hold one)."""
    if not isinstance(value, str):
        raise InvalidArgumentError(f"invalid {field}: {shown(value)} is not a string")
    if required and not value.strip():
        raise InvalidArgumentError(f"invalid {field}: must not be empty")
    if len(value) > max_len:
        raise InvalidArgumentError(f"invalid {field}: {len(value)} characters, at most {max_len} allowed")
    if "\x00" in value:
        raise InvalidArgumentError(f"invalid {field}: must not contain a NUL character")
    return value


def parse_bool(value: object, field: str, default: bool) -> bool:
    """A JSON boolean; absent (None) is `default`."""
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"invalid {field}: {shown(value)} is not a boolean")
    return value


def parse_string_map(value: object, field: str, *, max_value: int = MAX_VALUE) -> dict[str, str]:
    """An object of strings to strings (env, metadata), bounded in entries and lengths."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgumentError(f"invalid {field}: must be an object")
    if len(value) > MAX_ITEMS:
        raise InvalidArgumentError(f"invalid {field}: {len(value)} entries, at most {MAX_ITEMS} allowed")
    for key, item in value.items():
        parse_text(key, f"{field} key", MAX_KEY, required=True)
        parse_text(item, f"{field}.{key[:64]}", max_value)
    return dict(value)


def shown(value: object) -> str:
    """A value for an error message, cut short: an error never echoes a megabyte back."""
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."
