"""Apps: Fly's naming rules, organisation scoping (another organisation's app is absent, except to the app's own
GET, which answers 403 as Fly does: names are one global namespace, and fly-go counts a 403 as taken)."""

from __future__ import annotations

import re

from aerodrome.control.auth import require_app, require_org_wide
from aerodrome.core import (
    App,
    Clock,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    Store,
    Token,
    UnprocessableError,
    rfc3339,
    ulid,
)

_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def check_app_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError("app_name is required")
    if not _NAME.match(name) or "--" in name:
        raise UnprocessableError(
            f"invalid app name {name!r}: use 1-63 lowercase letters, digits and dashes, starting and ending with a "
            "letter or digit"
        )
    return name


class Apps:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def create(self, caller: Token, name: object, org_slug: str, network: str = "") -> App:
        app_name = check_app_name(name)
        require_org_wide(caller, "creating apps")
        if org_slug != caller.org_slug:
            raise NotFoundError(f"organization {org_slug!r} not found")
        org = await self._store.get_org(org_slug)
        if org is None:
            raise NotFoundError(f"organization {org_slug!r} not found")
        app = App(
            id=app_name,
            name=app_name,
            org_slug=org_slug,
            network=network or "default",
            internal_numeric_id=int.from_bytes(ulid().encode()[-6:], "big") % 10_000_000,
            created_at=rfc3339(self._clock.now()),
        )
        await self._store.add_app(app)
        return app

    async def get(self, caller: Token, name: str, *, destroying: bool = False, foreign: bool = False) -> App:
        """The caller's app. One being destroyed is absent for everything under it; only the app's own GET,
        list and DELETE (`destroying=True`) still see it, so a client can watch it go. `foreign=True` tells
        another organisation's app (403) from a free name (404)."""
        app = await self._store.get_app(name)
        if foreign and app is not None and app.org_slug != caller.org_slug:
            raise PermissionDeniedError(f"app {name!r} belongs to another organization")
        if app is None or app.org_slug != caller.org_slug or (app.destroying and not destroying):
            raise NotFoundError(f"Could not find App {name!r}")
        require_app(caller, name)
        return app

    async def list(self, caller: Token, org_slug: str) -> list[App]:
        if org_slug != caller.org_slug:
            raise NotFoundError(f"organization {org_slug!r} not found")
        listed = await self._store.list_apps(org_slug)
        return listed if caller.app_name is None else [app for app in listed if app.name == caller.app_name]
