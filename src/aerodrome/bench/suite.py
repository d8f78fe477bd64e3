"""A whole run: the chosen groups against one daemon, their figures, curves and plots, and `results.json`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aerodrome.bench import api, edge, lifecycle, plots, scale, volumes
from aerodrome.bench.figures import Figure
from aerodrome.bench.host import host_info
from aerodrome.bench.probe import Server

GROUPS = ("runtime", "api", "proxy", "volumes", "scale")


@dataclass(frozen=True, slots=True)
class Plan:
    """How much each group measures: `quick` fits in under three minutes on two cores."""

    rounds: int
    warmup: int
    gets: int
    creates: int
    edge_levels: tuple[int, ...]
    edge_seconds: float
    write_mb: int
    running_steps: tuple[int, ...]
    created: int
    volume_unit_mb: int

    @classmethod
    def quick(cls, volume_unit_mb: int) -> Plan:
        return cls(5, 1, 300, 150, (1, 4, 16), 2, 32, (10, 25), 200, volume_unit_mb)

    @classmethod
    def full(cls, volume_unit_mb: int) -> Plan:
        return cls(20, 3, 1000, 600, (1, 4, 16, 64), 5, 64, (10, 50, 100, 250, 500), 1000, volume_unit_mb)


@dataclass
class Results:
    figures: list[Figure] = field(default_factory=list)
    curves: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    plots: list[str] = field(default_factory=list)
    seconds: float = 0.0


def run(server: Server, workdir: Path, plan: Plan, groups: tuple[str, ...], log: Callable[[str], None]) -> Results:
    results = Results()
    began = time.monotonic()
    for group in groups:
        log(f"measuring {group}…")
        if group == "runtime":
            results.figures += lifecycle.measure(server, workdir, plan.rounds, plan.warmup)
        elif group == "api":
            results.figures += api.measure(server, plan.gets, plan.creates, plan.warmup * 50)
        elif group == "proxy":
            figures, results.curves["edge"] = edge.measure(server, workdir, plan.edge_levels, plan.edge_seconds)
            results.figures += figures
        elif group == "volumes":
            results.figures += volumes.measure(server, workdir, plan.volume_unit_mb, plan.rounds, plan.write_mb)
        elif group == "scale":
            figures, results.curves["scale"] = scale.measure(server, plan.running_steps, plan.created)
            results.figures += figures
    results.seconds = time.monotonic() - began
    return results


def draw(results: Results, out: Path, caption: str) -> None:
    if any(f.group == "runtime" for f in results.figures):
        results.plots.append(plots.lifecycle(results.figures, out / "lifecycle.png", caption).name)
    if "edge" in results.curves:
        results.plots.append(plots.edge(results.curves["edge"], out / "edge.png", caption).name)
    if results.curves.get("scale", {}).get("running"):
        results.plots.append(plots.scale(results.curves["scale"], out / "scale.png", caption).name)


def write_json(results: Results, out: Path, quick: bool, groups: tuple[str, ...]) -> Path:
    document = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": host_info(),
        "quick": quick,
        "groups": list(groups),
        "seconds": round(results.seconds, 1),
        "figures": [f.to_json() for f in results.figures],
        "order": lifecycle.order(results.figures),
        "curves": results.curves,
        "plots": results.plots,
    }
    path = out / "results.json"
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return path


def caption() -> str:
    host = host_info()
    return f"{host['cpu_model']}, {host['cores']} cores, {host['memory_mib']} MiB, Linux {host['kernel']}"
