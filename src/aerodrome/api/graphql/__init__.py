"""The part of Fly's GraphQL API (api.fly.io/graphql) that flyctl and fly-go use: apps, organisations, IPs,
certificates, secrets, machines, volumes, regions and tokens."""

from __future__ import annotations

from aerodrome.api.graphql.route import routes
from aerodrome.api.graphql.schema import execute, schema

__all__ = ["execute", "routes", "schema"]
