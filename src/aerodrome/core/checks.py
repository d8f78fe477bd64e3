"""Health checks: a config's `checks` and its services' `checks`, parsed, and the results the host keeps of them.

Fly runs two families: a machine's top-level `checks` (`{name: {type, port, …, kind}}`), informational unless
their kind is `readiness`, and each service's `checks` (a list), which the proxy always routes by. Both reach
the edge here the same way: a machine whose readiness checks do not all pass takes no new traffic.
Results have Fly's shape (`CheckStatus`: name, status passing|warning|critical, output, updated_at).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aerodrome.core.durations import parse_duration
from aerodrome.core.errors import InvalidArgumentError
from aerodrome.core.parsing import MAX_KEY, MAX_NAME, MAX_PATH, MAX_VALUE, parse_bool, parse_text

CHECK_PASSING, CHECK_WARNING, CHECK_CRITICAL = "passing", "warning", "critical"
READINESS, INFORMATIONAL = "readiness", "informational"
MAX_CHECKS = 32  # per machine, both families together
MAX_HEADERS = 32
MIN_INTERVAL = 1.0  # seconds; Fly's smallest too
MAX_INTERVAL = 3600.0
MAX_TIMEOUT = 60.0
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@dataclass(frozen=True, slots=True)
class CheckSpec:
    name: str
    type: str  # tcp | http
    port: int
    interval: float = 15.0
    timeout: float = 2.0
    grace_period: float = 0.0  # failures in this time after a start are warnings, not critical
    method: str = "GET"
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    kind: str = INFORMATIONAL
    https: bool = False
    tls_skip_verify: bool = False

    @property
    def readiness(self) -> bool:
        return self.kind == READINESS


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: str  # passing | warning | critical
    output: str
    updated_at: str  # RFC 3339

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "output": self.output, "updated_at": self.updated_at}


def parse_checks(config: dict[str, Any]) -> tuple[CheckSpec, ...]:
    """The top-level checks, then the services' (named as flyctl shows them: `servicecheck-00-http-8080`)."""
    top = config.get("checks") or {}
    if not isinstance(top, dict):
        raise InvalidArgumentError("invalid config.checks: must be an object of name to check")
    checks = [_check(raw, f"config.checks.{name}", _name(name), None, None) for name, raw in top.items()]
    services = config.get("services") or []
    numbered = 0
    for index, service in enumerate(services if isinstance(services, list) else []):
        listed = service.get("checks") if isinstance(service, dict) else None
        if listed is None:
            continue
        if not isinstance(listed, list):
            raise InvalidArgumentError(f"invalid services[{index}].checks: must be a list")
        port = service.get("internal_port")
        for number, raw in enumerate(listed):
            field = f"services[{index}].checks[{number}]"
            kind = raw.get("type", "tcp") if isinstance(raw, dict) else "tcp"
            name = f"servicecheck-{numbered:02d}-{kind}-{port}"
            numbered += 1
            checks.append(_check(raw, field, name, port if isinstance(port, int) else None, READINESS))
    if len(checks) > MAX_CHECKS:
        raise InvalidArgumentError(f"invalid config: {len(checks)} checks, at most {MAX_CHECKS} allowed")
    return tuple(checks)


def _name(name: object) -> str:
    text = parse_text(name, "config.checks name", MAX_NAME, required=True)
    if not text.isprintable():
        raise InvalidArgumentError(f"invalid config.checks name {text!r}: must be printable")
    return text


def _check(raw: object, field: str, name: str, default_port: int | None, kind: str | None) -> CheckSpec:
    if not isinstance(raw, dict):
        raise InvalidArgumentError(f"invalid {field}: must be an object")
    type_ = raw.get("type", "tcp")
    if type_ not in ("tcp", "http"):
        raise InvalidArgumentError(f"invalid {field}.type {type_!r}: must be tcp or http")
    port = raw.get("port", default_port)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InvalidArgumentError(f"invalid {field}.port: a port between 1 and 65535 is required")
    return CheckSpec(
        name=name,
        type=type_,
        port=port,
        interval=_duration(raw, "interval", "15s", field, MIN_INTERVAL, MAX_INTERVAL),
        timeout=_duration(raw, "timeout", "2s", field, 0.001, MAX_TIMEOUT),
        grace_period=_duration(raw, "grace_period", "0s", field, 0.0, MAX_INTERVAL),
        method=_method(raw.get("method"), field),
        path=_path(raw.get("path"), field),
        headers=_headers(raw.get("headers"), field),
        kind=kind or _kind(raw.get("kind"), field),
        https=_protocol(raw.get("protocol"), field) == "https",
        tls_skip_verify=parse_bool(raw.get("tls_skip_verify"), f"{field}.tls_skip_verify", False),
    )


def _duration(raw: dict[str, Any], key: str, default: str, field: str, least: float, most: float) -> float:
    seconds = parse_duration(raw.get(key) or default, field=f"{field}.{key}", maximum=most)
    if seconds < least:
        raise InvalidArgumentError(f"invalid {field}.{key}: must be at least {least:g}s")
    return seconds


def _method(value: object, field: str) -> str:
    method = parse_text(value or "GET", f"{field}.method", 16).upper()
    if method not in HTTP_METHODS:
        raise InvalidArgumentError(f"invalid {field}.method {method!r}: must be one of {', '.join(HTTP_METHODS)}")
    return method


def _path(value: object, field: str) -> str:
    path = parse_text(value or "/", f"{field}.path", MAX_PATH)
    if not path.startswith("/") or not path.isprintable() or " " in path:
        raise InvalidArgumentError(f"invalid {field}.path {path!r}: must start with / and hold no spaces")
    return path


def _kind(value: object, field: str) -> str:
    kind = value or INFORMATIONAL
    if kind not in (READINESS, INFORMATIONAL):
        raise InvalidArgumentError(f"invalid {field}.kind {kind!r}: must be readiness or informational")
    return str(kind)


def _protocol(value: object, field: str) -> str:
    protocol = value or "http"
    if protocol not in ("http", "https"):
        raise InvalidArgumentError(f"invalid {field}.protocol {protocol!r}: must be http or https")
    return str(protocol)


def _headers(value: object, field: str) -> tuple[tuple[str, str], ...]:
    """fly-go's `[{name, values: [...]}]`, or an object of name to value(s) as fly.toml writes them."""
    if value is None:
        return ()
    if isinstance(value, dict):
        value = [{"name": k, "values": v if isinstance(v, list) else [v]} for k, v in value.items()]
    if not isinstance(value, list) or len(value) > MAX_HEADERS:
        raise InvalidArgumentError(f"invalid {field}.headers: a list of at most {MAX_HEADERS} {{name, values}}")
    pairs = []
    for entry in value:
        if not isinstance(entry, dict) or not isinstance(entry.get("values", []), list):
            raise InvalidArgumentError(f"invalid {field}.headers: each must be {{name, values: [...]}}")
        name = parse_text(entry.get("name"), f"{field}.headers name", MAX_KEY, required=True)
        if not name.isascii() or not all(c.isalnum() or c in "-_!#$%&'*+.^`|~" for c in name):
            raise InvalidArgumentError(f"invalid {field}.headers name {name!r}")
        for item in entry.get("values", []):
            text = parse_text(item, f"{field}.headers.{name}", MAX_VALUE)
            if any(c in text for c in "\r\n\0"):
                raise InvalidArgumentError(f"invalid {field}.headers.{name}: no line breaks")
            pairs.append((name, text))
    return tuple(pairs[: MAX_HEADERS * 4])


ChecksListener = Callable[[str, str, CheckResult], None]  # (machine id, app, the result that changed)


class CheckBoard:
    """The latest result of each check of each started machine, as the host's checker last saw them.

    A machine's results are one tuple, replaced whole on a change, so a renderer may key a cache on it.
    """

    def __init__(self) -> None:
        self._results: dict[str, tuple[CheckResult, ...]] = {}
        self._readiness: dict[str, frozenset[str]] = {}  # machine id → names of its readiness checks
        self._listeners: list[ChecksListener] = []

    def subscribe(self, listener: ChecksListener) -> None:
        self._listeners.append(listener)

    def results(self, machine_id: str) -> tuple[CheckResult, ...]:
        return self._results.get(machine_id, ())

    def ready(self, machine_id: str) -> bool:
        """Whether every readiness check of the machine passes; False while it is not being checked."""
        names = self._readiness.get(machine_id)
        if names is None:
            return False
        return all(r.status == CHECK_PASSING for r in self._results[machine_id] if r.name in names)

    def track(self, machine_id: str, app: str, checks: tuple[CheckSpec, ...], now: str) -> None:
        """A started machine's checks, each `warning` until it has run once."""
        self._readiness[machine_id] = frozenset(c.name for c in checks if c.readiness)
        self._results[machine_id] = tuple(
            CheckResult(c.name, CHECK_WARNING, "waiting for the first check", now) for c in checks
        )
        for result in self._results[machine_id]:
            self._tell(machine_id, app, result)

    def forget(self, machine_id: str) -> None:
        self._results.pop(machine_id, None)
        self._readiness.pop(machine_id, None)

    def record(self, machine_id: str, app: str, result: CheckResult) -> bool:
        """Keep `result`; True (and listeners told) when its status or output changed."""
        current = self._results.get(machine_id)
        if current is None:
            return False  # forgotten meanwhile: the machine stopped while its check ran
        old = next((r for r in current if r.name == result.name), None)
        if old is not None and (old.status, old.output) == (result.status, result.output):
            return False
        self._results[machine_id] = tuple(result if r.name == result.name else r for r in current)
        self._tell(machine_id, app, result)
        return True

    def _tell(self, machine_id: str, app: str, result: CheckResult) -> None:
        for listener in self._listeners:
            listener(machine_id, app, result)
