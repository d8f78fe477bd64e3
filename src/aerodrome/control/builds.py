"""Build tracking (flyctl's UIEX `POST /api/v1/builds` and `/builds/finish`): flyctl records each image it
resolves for a deploy or `machine run` and reports how it ended. Builds happen on the user's side here, so a
record is only kept for the finish to find: in memory, the newest few per daemon."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass, replace

from aerodrome.core import App, Clock, InvalidArgumentError, NotFoundError

MAX_KEPT = 1000
STATUSES = frozenset({"started", "completed", "failed", "finished", "cancelled"})


@dataclass(frozen=True, slots=True)
class Build:
    id: int
    app_name: str
    status: str
    started_at: float
    wallclock_time_ms: int = 0


class Builds:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        # ids are milliseconds at start-up onwards, so a restarted daemon does not hand out an earlier run's
        self._ids = itertools.count(int(clock.now() * 1000))
        self._kept: OrderedDict[int, Build] = OrderedDict()

    def create(self, app: App) -> Build:
        build = Build(next(self._ids), app.name, "started", self._clock.now())
        self._kept[build.id] = build
        while len(self._kept) > MAX_KEPT:
            self._kept.popitem(last=False)
        return build

    def finish(self, app: App, build_id: object, status: object) -> Build:
        if not isinstance(build_id, int) or isinstance(build_id, bool):
            raise InvalidArgumentError("build_id is required and must be an integer")
        if not isinstance(status, str) or status not in STATUSES:
            raise InvalidArgumentError(f"invalid status: use one of {', '.join(sorted(STATUSES))}")
        build = self._kept.get(build_id)
        if build is None or build.app_name != app.name:
            raise NotFoundError(f"build {build_id} not found")
        elapsed = int((self._clock.now() - build.started_at) * 1000)
        finished = replace(build, status=status, wallclock_time_ms=max(elapsed, 0))
        self._kept[build_id] = finished
        return finished
