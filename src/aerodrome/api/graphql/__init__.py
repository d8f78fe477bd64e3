"""The GraphQL subset of Fly's API (api.fly.io/graphql) that clients use for apps and IP addresses."""

from __future__ import annotations

from aerodrome.api.graphql.route import routes
from aerodrome.api.graphql.schema import execute, schema

__all__ = ["execute", "routes", "schema"]
