"""Releases: an app's numbered versions, one per deploy and per change of its secrets.

flyctl makes its own release before it rolls machines (`POST /api/v1/releases`) and marks it done or failed
(`PATCH`), tagging each machine with `fly_release_id`. A machine created or updated without that tag by another
client, with an image the app's current release does not run, is a deploy too, and gets a release of its own, as
a secrets change does: every client's deploys show in `fly releases`.
"""

from __future__ import annotations

import json

from aerodrome.core import App, Clock, InvalidArgumentError, NotFoundError, Release, Store, rfc3339, ulid

COMPLETE = "complete"
#: Releases a client may leave unfinished; `current` skips them, as Fly's does.
UNFINISHED = ("pending", "running", "failed", "cancelled", "interrupted")
MAX_LISTED = 500
MAX_METADATA = 64 * 1024


class Releases:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def create(
        self,
        app: App,
        *,
        image: str,
        reason: str = "deploy",
        description: str = "",
        strategy: str = "",
        user: str = "",
        status: str = COMPLETE,
    ) -> Release:
        now = rfc3339(self._clock.now())
        release = Release(
            id=ulid(),
            app_name=app.name,
            version=0,
            status=status,
            reason=reason,
            description=description or f"Deploy {image}",
            image_ref=image,
            strategy=strategy,
            user=user,
            created_at=now,
            updated_at=now,
        )
        return await self._store.add_release(release)

    async def get(self, org_slug: str, release_id: str) -> Release:
        release = await self._store.get_release(release_id)
        app = await self._store.get_app(release.app_name) if release else None
        if release is None or app is None or app.org_slug != org_slug:
            raise NotFoundError(f"release {release_id!r} not found")
        return release

    async def update(
        self, org_slug: str, release_id: str, status: object, metadata: object = None, *, app_name: str | None = None
    ) -> Release:
        """`app_name`: the one app a deploy token acts on; another app's release is absent to it."""
        if not isinstance(status, str) or not 0 < len(status) <= 64:
            raise InvalidArgumentError("invalid status: must be a string of 1-64 characters")
        if app_name is not None and (await self.get(org_slug, release_id)).app_name != app_name:
            raise NotFoundError(f"release {release_id!r} not found")
        await self.get(org_slug, release_id)
        encoded = json.dumps(metadata if metadata is not None else {})
        if len(encoded) > MAX_METADATA:
            raise InvalidArgumentError(f"invalid metadata: {len(encoded)} bytes, at most {MAX_METADATA}")
        updated = await self._store.update_release(release_id, status, encoded, rfc3339(self._clock.now()))
        assert updated is not None
        return updated

    async def list(self, app: App, limit: int = MAX_LISTED) -> list[Release]:
        return await self._store.list_releases(app.name, max(1, min(limit, MAX_LISTED)))

    async def current(self, app: App) -> Release | None:
        """The newest release that finished, else the newest."""
        listed = await self.list(app)
        return next((r for r in listed if r.status not in UNFINISHED), listed[0] if listed else None)

    async def machine_changed(self, app: App, config: dict[str, object]) -> Release | None:
        """The release a machine create or update makes, if it is a deploy no client recorded."""
        metadata = config.get("metadata")
        tagged = isinstance(metadata, dict) and metadata.get("fly_release_id")
        if tagged and await self._store.get_release(str(tagged)) is not None:
            return None
        image = str(config.get("image") or "")
        current = await self.current(app)
        if current is not None and current.image_ref == image:
            return None
        return await self.create(app, image=image)

    async def secrets_changed(self, app: App, version: int) -> Release:
        current = await self.current(app)
        image = current.image_ref if current else ""
        return await self.create(app, image=image, reason="change secrets", description=f"Secrets version {version}")
