"""What each handler needs first: the control plane, the authenticated caller, the app, the parsed body."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from aerodrome.api.limits import ApiLimits
from aerodrome.control import ControlPlane
from aerodrome.core import App, InvalidArgumentError, NotFoundError, Organization, Token, parse_json

NONCE_HEADER = "fly-machine-lease-nonce"
_INTEGER = re.compile(r"\s*-?[0-9]{1,18}\s*")  # a query integer fits in 64 bits


async def authenticate(request: Request) -> Token:
    """The caller, from the Authorization header alone: no body is read before this."""
    plane: ControlPlane = request.app.state.plane
    limits: ApiLimits = request.app.state.limits
    return await plane.tokens.authenticate(
        request.headers.get("authorization"), max_tokens=limits.auth_tokens, max_bytes=limits.auth_header_bytes
    )


@dataclass(frozen=True, slots=True)
class Call:
    plane: ControlPlane
    caller: Token
    request: Request

    @classmethod
    async def of(cls, request: Request) -> Call:
        return cls(request.app.state.plane, await authenticate(request), request)

    async def app(self, *, destroying: bool = False, foreign: bool = False) -> App:
        """The path's app; `destroying=True` for the app's own GET and DELETE, which still see one being deleted."""
        name = self.request.path_params["app_name"]
        return await self.plane.apps.get(self.caller, name, destroying=destroying, foreign=foreign)

    async def org(self) -> Organization:
        org = await self.plane.store.get_org(self.caller.org_slug)
        assert org is not None  # a token exists only for an existing organisation
        return org

    def own_org(self) -> str:
        """The `{org_slug}` of the path, which must be the caller's: another organisation is simply absent."""
        org_slug = str(self.request.path_params["org_slug"])
        if org_slug != self.caller.org_slug:
            raise NotFoundError(f"organization {org_slug!r} not found")
        return org_slug

    @property
    def machine_id(self) -> str:
        return str(self.request.path_params["machine_id"])

    @property
    def nonce(self) -> str | None:
        return self.request.headers.get(NONCE_HEADER)

    async def limit(self, action: str, identifier: str) -> None:
        await self.plane.limiter.check(action, identifier)

    async def body(self, *, required: bool = True) -> dict[str, Any]:
        raw = await self.request.body()
        if not raw.strip():
            if required:
                raise InvalidArgumentError("request body is required")
            return {}
        value = parse_json(raw)  # finite numbers only, bounded nesting: Go's json, not Python's
        if not isinstance(value, dict):
            raise InvalidArgumentError("request body must be a JSON object")
        return value

    def query_bool(self, name: str) -> bool:
        return self.request.query_params.get(name, "").lower() in ("1", "true", "yes")

    def query_list(self, name: str) -> list[str]:
        """Repeated keys and comma-joined values alike (`state=a&state=b`, `state=a,b`)."""
        values: list[str] = []
        for raw in self.request.query_params.getlist(name):
            values.extend(v.strip() for v in raw.split(",") if v.strip())
        return values

    def query_int(self, name: str, default: int) -> int:
        raw = self.request.query_params.get(name)
        if raw is None or raw == "":
            return default
        if not _INTEGER.fullmatch(raw):
            raise InvalidArgumentError(f"invalid {name}: {raw[:40]!r} is not an integer")
        return int(raw)
