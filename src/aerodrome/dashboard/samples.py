"""The last hour of each machine's CPU, memory and network, and each app's edge requests, kept in memory.

Samples come from the same `MetricSource`s as `/metrics` (the cgroups and veth counters of running machines,
the edge's per-app counts), read every `interval` seconds for the organisations someone signed in to the
dashboard within the hour; nothing is sampled for an organisation nobody looks at. A restart starts empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aerodrome.api.metrics import MetricSource

log = logging.getLogger(__name__)
WINDOW = 3600.0  # seconds of history shown and kept


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # time.time()
    cpu_seconds: float = 0.0
    memory_bytes: float = 0.0
    net_bytes: float = 0.0  # received + sent
    requests: float = 0.0  # the app's edge responses (for an app's series)


def _samples_of(families: object, app_series: dict[str, float], machine_series: dict[str, dict[str, float]]) -> None:
    for family in families:  # type: ignore[attr-defined]
        for sample in family.samples:
            labels, value = sample.labels, float(sample.value)
            if sample.name == "fly_edge_http_responses_count":
                app_series[labels["app"]] = app_series.get(labels["app"], 0.0) + value
                continue
            field = {
                "aerodrome_machine_cpu_seconds_total": "cpu_seconds",
                "aerodrome_machine_memory_bytes": "memory_bytes",
                "fly_instance_net_recv_bytes": "net_bytes",
                "fly_instance_net_sent_bytes": "net_bytes",
            }.get(sample.name)
            if field and "instance" in labels:
                series = machine_series.setdefault(labels["instance"], {})
                series[field] = series.get(field, 0.0) + value


class Samples:
    def __init__(
        self, sources: Sequence[MetricSource], interval: float = 15.0, clock: Callable[[], float] = time.time
    ) -> None:
        self._sources = list(sources)
        self._clock = clock  # the samples' timestamps (wall-clock seconds)
        self.interval = interval
        self._rings: dict[str, deque[Sample]] = {}  # machine id or "app:<name>" -> samples, oldest first
        self._watched: dict[str, float] = {}  # org slug -> monotonic time last seen
        self._sampled: dict[str, float] = {}  # org slug -> monotonic time of its last sample
        self._task: asyncio.Task[None] | None = None

    def watch(self, org_slug: str) -> None:
        """An organisation someone is looking at: sample it for the next hour."""
        self._watched[org_slug] = time.monotonic()
        if self._sources and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._run(), name="dashboard samples")

    async def fresh(self, org_slug: str, key: str, within: float = 5.0) -> None:
        """Sample now unless `key` has a recent sample, so a page opened between two passes shows current
        figures; an organisation is read at most once a second this way, however often its pages load."""
        ring = self._rings.get(key)
        if ring and self._clock() - ring[-1].at <= within:
            return
        if self._sources and time.monotonic() - self._sampled.get(org_slug, float("-inf")) >= 1.0:
            await self.sample(org_slug)

    def of(self, key: str) -> list[Sample]:
        return list(self._rings.get(key, ()))

    async def _run(self) -> None:
        while self._watched:
            now = time.monotonic()
            for org, seen in list(self._watched.items()):
                if now - seen > WINDOW:
                    del self._watched[org]
                    continue
                try:
                    await self.sample(org)
                except Exception:  # a source that failed once is asked again next time
                    log.exception("could not sample the metrics of %s", org)
            await asyncio.sleep(self.interval)

    async def sample(self, org_slug: str) -> None:
        apps: dict[str, float] = {}
        machines: dict[str, dict[str, float]] = {}
        for source in self._sources:
            _samples_of(await source(org_slug), apps, machines)
        self._sampled[org_slug] = time.monotonic()
        at = self._clock()
        for machine_id, values in machines.items():
            self._append(machine_id, Sample(at, **values))
        for app_name, requests in apps.items():
            self._append(f"app:{app_name}", Sample(at, requests=requests))
        # a machine destroyed or stopped an hour ago has nothing left to show: its ring goes
        for key in [key for key, ring in self._rings.items() if at - ring[-1].at > WINDOW]:
            del self._rings[key]

    def _append(self, key: str, sample: Sample) -> None:
        ring = self._rings.get(key)
        if ring is None:
            ring = self._rings[key] = deque(maxlen=int(WINDOW / self.interval) + 1)
        ring.append(sample)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def rates(samples: list[Sample], field: str) -> list[float]:
    """Per-second rates of a counter between successive samples (a restart's reset counts as zero)."""
    values = [getattr(s, field) for s in samples]
    return [
        max(0.0, (b - a) / max(t1.at - t0.at, 1e-6))
        for (a, b, t0, t1) in zip(values, values[1:], samples, samples[1:], strict=False)
    ]


def sparkline(values: list[float], width: int = 240, height: int = 48) -> str:
    """The points of an SVG polyline, scaled to the box (an empty string for fewer than two values)."""
    if len(values) < 2:
        return ""
    top = max(values) or 1.0
    step = width / (len(values) - 1)
    return " ".join(f"{i * step:.1f},{height - v / top * (height - 2) - 1:.1f}" for i, v in enumerate(values))
