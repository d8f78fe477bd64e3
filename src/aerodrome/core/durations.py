"""Go duration strings (`"10s"`, `"1m30s"`, `"500ms"`) and signal names, as Fly's clients send them."""

from __future__ import annotations

import re
import signal as _signal

from aerodrome.core.errors import InvalidArgumentError

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(value: object, *, field: str = "timeout") -> float:
    """Seconds from a Go duration string, or from an integer of nanoseconds (fly-go's encoding)."""
    if isinstance(value, bool):
        raise InvalidArgumentError(f"invalid {field}: {value!r}")
    if isinstance(value, int | float):
        return float(value) / 1e9
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(f"invalid {field}: {value!r}")
    text = value.strip()
    if text.isdigit():  # a bare number of seconds, as `?timeout=30` is
        return float(text)
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise InvalidArgumentError(f"invalid {field}: time: invalid duration {value!r}")
    return total


def parse_signal(value: object) -> int:
    """A signal number from `"SIGTERM"`, `"TERM"`, `15` or `"15"`."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip():
        text = value.strip().upper()
        if text.isdigit():
            number = int(text)
        else:
            name = text if text.startswith("SIG") else "SIG" + text
            try:
                number = int(_signal.Signals[name])
            except KeyError:
                raise InvalidArgumentError(f"invalid signal: {value!r}") from None
    else:
        raise InvalidArgumentError(f"invalid signal: {value!r}")
    if not 1 <= number < 65:
        raise InvalidArgumentError(f"invalid signal: {value!r}")
    return number


def signal_name(number: int) -> str:
    try:
        return _signal.Signals(number).name
    except ValueError:
        return str(number)
