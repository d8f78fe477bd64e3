"""PNG plots of a run (matplotlib, Agg: no display): the lifecycle's latency distributions, edge throughput vs
concurrency, the scale curves. Published anchors are drawn as labelled lines, marked as other hardware."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from aerodrome.bench.figures import Figure

#: Published anchors drawn on the lifecycle plot, in ms: figures from other systems on other hardware.
ANCHOR_LINES = {"Fly start ≈ 300 ms": 300.0, "Firecracker init ≤ 125 ms": 125.0, "Daytona < 90 ms": 90.0}


def lifecycle(figures: list[Figure], path: Path, title: str) -> Path:
    rows: dict[str, list[float]] = {}
    for figure in figures:
        if figure.group == "runtime":
            rows[figure.name] = figure.samples
            rows.setdefault(f"floor: {figure.floor_name}", figure.floor_samples)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.boxplot(list(rows.values())[::-1], vert=False, whis=(5, 95))
    ax.set_yticks(range(1, len(rows) + 1), list(rows)[::-1], fontsize=8)
    for (label, value), style in zip(ANCHOR_LINES.items(), (":", "--", "-."), strict=True):
        ax.axvline(value, linestyle=style, color="grey", label=label)
    ax.legend(title="published, other hardware", fontsize=7, title_fontsize=7, loc="lower right")
    ax.set_xscale("log")
    ax.set_xlabel("ms, API call to the machine answering HTTP (log scale)")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def edge(curves: dict[str, list[float]], path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in ("direct", "nginx", "edge"):
        if curves.get(name):
            ax.plot(curves["concurrency"], curves[name], marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent connections")
    ax.set_ylabel("requests/s (busybox httpd in a machine)")
    ax.legend()
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def scale(curves: dict[str, list[float]], path: Path, title: str) -> Path:
    fig, axes = plt.subplots(2, 2, figsize=(9, 6))
    panels = (
        ("create_ms", "create → HTTP p50 (ms)"),
        ("get_ms", "GET machine p50 (ms)"),
        ("rss_mib", "daemon RSS (MiB)"),
        ("per_machine_host_mib", "host memory per machine (MiB)"),
    )
    for ax, (key, label) in zip(axes.flat, panels, strict=True):
        ax.plot(curves["running"], curves[key], marker="o")
        ax.set_xlabel("running machines")
        ax.set_ylabel(label, fontsize=8)
        ax.set_ylim(bottom=0)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def _save(fig: matplotlib.figure.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
