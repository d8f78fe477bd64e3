"""What the API listener accepts from one client: body, head and header sizes, time for a head, connections,
GraphQL documents and Authorization headers. Each is a `serve --api-limit NAME=VALUE` setting."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from aerodrome.control import MAX_AUTHORIZATION_BYTES, MAX_TOKENS

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True, slots=True)
class ApiLimits:
    body_bytes: int = 1 * MIB  # every JSON route but the two below
    machine_body_bytes: int = 8 * MIB  # machine create and update: a config may carry `files[]`
    graphql_body_bytes: int = 256 * KIB  # authenticated only: without a token the body is never read
    head_bytes: int = 64 * KIB  # request line and headers
    headers: int = 100
    head_timeout: float = 10.0  # from a connection (or the end of the previous reply) to the head's last byte
    body_timeout: float = 30.0  # silence while a body is due (and the daemon is ready to read it)
    connections: int = 1024
    connections_per_address: int = 256  # loopback clients all share one address
    auth_header_bytes: int = MAX_AUTHORIZATION_BYTES
    auth_tokens: int = MAX_TOKENS  # comma-joined tokens (FlyV1 macaroon lists) in one Authorization header
    graphql_depth: int = 12
    graphql_fields: int = 500  # field selections, each fragment counted where it is spread
    graphql_tokens: int = 10_000  # lexical tokens: parsing stops there


# `serve --api-limit NAME=VALUE`: each name and the field it sets.
API_LIMITS = {
    "body": "body_bytes",
    "machine-body": "machine_body_bytes",
    "graphql-body": "graphql_body_bytes",
    "head": "head_bytes",
    "headers": "headers",
    "head-timeout": "head_timeout",
    "body-timeout": "body_timeout",
    "connections": "connections",
    "connections-per-address": "connections_per_address",
    "auth-header": "auth_header_bytes",
    "auth-tokens": "auth_tokens",
    "graphql-depth": "graphql_depth",
    "graphql-fields": "graphql_fields",
    "graphql-tokens": "graphql_tokens",
}

_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": KIB, "m": MIB, "g": 1024 * MIB}


def parse_limits(values: dict[str, str], base: ApiLimits | None = None) -> ApiLimits:
    """`base` with each NAME=VALUE applied; sizes take k/m/g suffixes (1024-based). ValueError names the bad one."""
    changes: dict[str, int | float] = {}
    for name, raw in values.items():
        field = API_LIMITS.get(name)
        if field is None:
            raise ValueError(f"unknown limit {name!r}: one of {', '.join(API_LIMITS)}")
        if field.endswith("_timeout"):
            try:
                seconds = float(raw)
            except ValueError:
                raise ValueError(f"{name}: {raw!r} is not seconds") from None
            if not seconds > 0:
                raise ValueError(f"{name}: a timeout must be more than 0 seconds")
            changes[field] = seconds
            continue
        match = _SIZE.match(raw)
        if match is None or (match.group(2) and not field.endswith("_bytes")):
            raise ValueError(f"{name}: {raw!r} is not a {'size' if field.endswith('_bytes') else 'count'}")
        number = int(match.group(1)) * _UNITS[match.group(2).lower()]
        if number < 1:
            raise ValueError(f"{name}: must be at least 1")
        changes[field] = number
    return dataclasses.replace(base or ApiLimits(), **changes)  # type: ignore[arg-type]
