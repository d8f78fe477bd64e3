"""Go duration strings (`"10s"`, `"1m30s"`, `"500ms"`) and signal names, as Fly's clients send them."""

from __future__ import annotations

import math
import re
import signal as _signal

from aerodrome.core.errors import InvalidArgumentError
from aerodrome.core.parsing import shown

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)")


MAX_DURATION = 24 * 3600.0  # the longest stop or restart timeout accepted: a day


def parse_duration(value: object, *, field: str = "timeout", maximum: float = MAX_DURATION) -> float:
    """Seconds from a Go duration string, or from a number of nanoseconds (fly-go's encoding).

    The result is finite, at least 0 and at most `maximum` seconds; anything else is an InvalidArgumentError
    naming `field`.
    """
    if isinstance(value, bool):
        raise InvalidArgumentError(f"invalid {field}: {shown(value)} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value) / 1e9
    elif isinstance(value, str) and value.strip() and len(value) <= 64:
        seconds = _parse_text(value, field)
    else:
        raise InvalidArgumentError(f"invalid {field}: {shown(value)} is not a duration")
    if not math.isfinite(seconds) or not 0 <= seconds <= maximum:
        raise InvalidArgumentError(f"invalid {field}: {shown(value)} must be between 0s and {maximum:g}s")
    return seconds


def _parse_text(value: str, field: str) -> float:
    text = value.strip()
    if text.isascii() and text.isdigit():  # a bare number of seconds, as `?timeout=30` is
        return float(text)
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise InvalidArgumentError(f"invalid {field}: time: invalid duration {shown(value)}")
    return total


def parse_signal(value: object) -> int:
    """A signal number from `"SIGTERM"`, `"TERM"`, `15` or `"15"`."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip():
        text = value.strip().upper()
        if text.isdigit():
            number = int(text) if len(text) <= 3 else 0  # a longer number is no signal (and int() caps digits)
        else:
            name = text if text.startswith("SIG") else "SIG" + text
            try:
                number = int(_signal.Signals[name])
            except KeyError:
                raise InvalidArgumentError(f"invalid signal: {shown(value)}") from None
    else:
        raise InvalidArgumentError(f"invalid signal: {shown(value)}")
    if not 1 <= number < 65:
        raise InvalidArgumentError(f"invalid signal: {shown(value)}")
    return number


def signal_name(number: int) -> str:
    try:
        return _signal.Signals(number).name
    except ValueError:
        return str(number)
