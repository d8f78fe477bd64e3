"""Retention: a periodic sweep that bounds what the store keeps of machines' history, as Fly does.

Fly shows a machine's recent events and versions, and lists a destroyed machine (`include_deleted=true`) only
for a while. Every `interval` seconds the sweep asks the store to remove, a batch of machines at a time, what
falls outside the settings; the cutoffs come from the control plane's clock. The sweep is periodic rather than
part of each event's insert, so the write path of a create or a start stays as it was.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aerodrome.control.periodic import Periodic
from aerodrome.core import Clock, Store, rfc3339

log = logging.getLogger("aerodrome.retention")

DAY = 86_400.0
MAX_ROUNDS = 100  # batches per sweep: what is left waits for the next one, so a sweep never holds the writer long


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    events_per_machine: int = 100
    event_max_age: float = 30 * DAY  # seconds
    versions_per_machine: int = 10
    destroyed_machine_age: float = 7 * DAY  # seconds a destroyed machine stays listed with include_deleted
    interval: float = 60.0  # seconds between sweeps; 0 turns them off
    batch: int = 500  # machines per batch


class Retention:
    def __init__(
        self, store: Store, clock: Clock, settings: RetentionSettings, *, log_max_age: float = 7 * DAY
    ) -> None:
        self._log_max_age = log_max_age
        self._store = store
        self._clock = clock
        self.settings = settings
        self.periodic = Periodic("retention", settings.interval, self.sweep, log)

    def start(self) -> None:
        self.periodic.start()

    async def close(self) -> None:
        await self.periodic.close()

    async def sweep(self) -> int:
        """One sweep, in batches until nothing is left to remove; returns how many rows went."""
        now = self._clock.now()
        settings = self.settings
        removed = 0
        for _ in range(MAX_ROUNDS):
            count = await self._store.prune(
                events_per_machine=settings.events_per_machine,
                events_before_ms=int((now - settings.event_max_age) * 1000),
                versions_per_machine=settings.versions_per_machine,
                destroyed_before=rfc3339(now - settings.destroyed_machine_age),
                batch=settings.batch,
            )
            removed += count
            if count == 0:
                break
        log_cutoff = int((now - self._log_max_age) * 1_000_000)
        for _ in range(MAX_ROUNDS):
            count = await self._store.prune_logs(before_us=log_cutoff, batch=settings.batch * 10)
            removed += count
            if count == 0:
                break
        if removed:
            log.info("retention removed %d rows", removed)
        return removed
