"""Where the client sends requests and how it presents its token: fly-go's rules, so the same environment
drives flyctl, fly-go programs and this client, against Fly or against aerodrome.

- The Machines API's base URL: the argument, else `FLY_FLAPS_BASE_URL`, else `FLY_API_HOSTNAME` (the name Fly's
  Machines guide exports), else `https://api.machines.dev`.
- GraphQL: the argument, else `FLY_API_BASE_URL` + `/graphql`; against Fly's own Machines API that is
  `https://api.fly.io/graphql`, against any other base URL (aerodrome) the base URL's own `/graphql`.
- The token: the argument, else `FLY_API_TOKEN`. A macaroon (`fm1r_…`, `fm1a_…`, `fm2_…`, or a comma-joined list
  of them) is sent as `FlyV1 <tokens>`, anything else as `Bearer <token>`; a token already written with either
  scheme keeps it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

FLY_MACHINES_URL = "https://api.machines.dev"
FLY_GRAPHQL_URL = "https://api.fly.io/graphql"
MACAROON_PREFIXES = ("fm1r_", "fm1a_", "fm2_")
SCHEMES = ("FlyV1 ", "Bearer ")


def authorization_header(token: str) -> str:
    """The `Authorization` value fly-go would send for `token`."""
    token = token.strip()
    if token.startswith(SCHEMES):
        return token
    parts = [part.strip() for part in token.split(",") if part.strip()]
    if parts and all(part.startswith(MACAROON_PREFIXES) for part in parts):
        return "FlyV1 " + ",".join(parts)
    return f"Bearer {token}"


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Everything a client needs to reach an API: resolve it once with `from_env`, or give it whole."""

    base_url: str = FLY_MACHINES_URL
    token: str = ""
    graphql_url: str = ""
    timeout: float = 60.0
    user_agent: str = "aerodrome-client"

    @classmethod
    def from_env(
        cls,
        base_url: str | None = None,
        token: str | None = None,
        *,
        graphql_url: str | None = None,
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
    ) -> ClientSettings:
        env = os.environ if env is None else env
        base = base_url or env.get("FLY_FLAPS_BASE_URL") or env.get("FLY_API_HOSTNAME") or FLY_MACHINES_URL
        graphql = graphql_url or _graphql_url(base, env.get("FLY_API_BASE_URL", ""))
        return cls(
            base_url=base.rstrip("/"),
            token=token if token is not None else env.get("FLY_API_TOKEN", ""),
            graphql_url=graphql,
            timeout=timeout,
        )

    @property
    def graphql(self) -> str:
        return self.graphql_url or _graphql_url(self.base_url, "")

    @property
    def platform(self) -> str:
        """The platform API's base (Fly's logs): GraphQL's address without `/graphql`."""
        return self.graphql.removesuffix("/graphql")

    def headers(self) -> dict[str, str]:
        headers = {"User-Agent": self.user_agent}
        if self.token:
            headers["Authorization"] = authorization_header(self.token)
        return headers


def _graphql_url(base_url: str, api_base_url: str) -> str:
    if api_base_url:
        return api_base_url.rstrip("/") + "/graphql"
    if base_url.rstrip("/") == FLY_MACHINES_URL:
        return FLY_GRAPHQL_URL
    return base_url.rstrip("/") + "/graphql"
