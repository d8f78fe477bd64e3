"""What a benchmark reports: a figure's samples beside the floor measured in the same run, its target, and the
published figures of other systems it may be read against."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from enum import StrEnum


class Goal(StrEnum):
    """How a target reads: the figure's ratio to its floor, or its p50 itself, bounded above or below."""

    RATIO_AT_MOST = "ratio ≤"
    RATIO_AT_LEAST = "ratio ≥"
    AT_MOST = "≤"
    AT_LEAST = "≥"
    ADDED_AT_MOST = "added ≤"  # p50 minus the floor's p50


@dataclass(frozen=True, slots=True)
class Target:
    goal: Goal
    value: float

    def met(self, figure: Figure) -> bool | None:
        """Whether the figure meets it; None when the ratio it needs has no floor."""
        if self.goal is Goal.ADDED_AT_MOST:
            return None if figure.floor_p50 is None else figure.p50 - figure.floor_p50 <= self.value
        if self.goal in (Goal.AT_MOST, Goal.AT_LEAST):
            measured: float | None = figure.p50
        else:
            measured = figure.ratio
        if measured is None:
            return None
        return measured <= self.value if self.goal in (Goal.AT_MOST, Goal.RATIO_AT_MOST) else measured >= self.value

    def describe(self, unit: str) -> str:
        if self.goal in (Goal.RATIO_AT_MOST, Goal.RATIO_AT_LEAST):
            return f"{self.goal.value[-1]} {self.value:g}x floor"
        if self.goal is Goal.ADDED_AT_MOST:
            return f"+ ≤ {self.value:g} {unit}"
        return f"{self.goal.value} {self.value:g} {unit}"


def percentile(samples: list[float], fraction: float) -> float:
    """The nearest-rank percentile (no interpolation: every figure reported is one that was measured)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


@dataclass(slots=True)
class Figure:
    """One measured figure. Latencies keep every sample; a load generator's figures (wrk) give p50 and p90 only."""

    group: str
    name: str
    unit: str
    p50: float
    p90: float
    samples: list[float] = field(default_factory=list)
    floor_name: str = ""
    floor_p50: float | None = None
    floor_p90: float | None = None
    floor_samples: list[float] = field(default_factory=list)
    target: Target | None = None
    anchors: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        group: str,
        name: str,
        unit: str,
        samples: list[float],
        *,
        floor_name: str = "",
        floor_samples: list[float] | None = None,
        target: Target | None = None,
        anchors: tuple[str, ...] = (),
    ) -> Figure:
        """A figure from its samples, and its floor's when it has one."""
        figure = cls(group, name, unit, statistics.median(samples), percentile(samples, 0.9), list(samples))
        figure.target, figure.anchors = target, anchors
        if floor_samples:
            figure.floor_name, figure.floor_samples = floor_name, list(floor_samples)
            figure.floor_p50, figure.floor_p90 = statistics.median(floor_samples), percentile(floor_samples, 0.9)
        return figure

    @property
    def ratio(self) -> float | None:
        if not self.floor_p50:
            return None
        return self.p50 / self.floor_p50

    def _floor_json(self) -> dict[str, object] | None:
        if not self.floor_name:
            return None
        return {"name": self.floor_name, "p50": self.floor_p50, "p90": self.floor_p90, "samples": self.floor_samples}

    def to_json(self) -> dict[str, object]:
        met = self.target.met(self) if self.target else None
        return {
            "group": self.group,
            "name": self.name,
            "unit": self.unit,
            "p50": self.p50,
            "p90": self.p90,
            "samples": self.samples,
            "floor": self._floor_json(),
            "ratio": self.ratio,
            "target": {"goal": self.target.goal.value, "value": self.target.value, "met": met} if self.target else None,
            "anchors": list(self.anchors),
        }


#: Published figures from other systems, on other hardware: context, never a comparison made in this run.
ANCHORS = {
    "start": ("Fly ≈ 300 ms", "Firecracker ≤ 125 ms to init", "e2b ~100-150 ms", "Daytona < 90 ms"),
    "resume": ("Fly: a few hundred ms", "Firecracker snapshot restore: ms", "e2b ~1 s"),
    "edge": ("sablier +1.5-2 ms proxy overhead",),
}
