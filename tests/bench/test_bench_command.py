"""`aerodrome bench --quick --only api`, for real, through the command's entry point: its own daemon on free
loopback ports, a bare uvicorn floor beside it, and a results.json that says what was measured and where (no
timing is asserted: only that each figure was measured, with its floor and target)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.commands import run_command

pytestmark = [
    pytest.mark.root,
    pytest.mark.timeout(600),
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runc") is None, reason="needs root and runc"),
]


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return run_command([sys.executable, "-m", "aerodrome", "bench", *args], timeout=420)


def test_quick_api_bench_writes_its_figures_and_the_host(tmp_path: Path) -> None:
    done = bench("--quick", "--only", "api", "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["quick"] is True and results["groups"] == ["api"]
    host = results["host"]
    assert host["cores"] >= 1 and host["memory_mib"] > 0 and host["kernel"] and host["cpu_model"]
    by_name = {figure["name"]: figure for figure in results["figures"]}
    get = by_name["GET machine"]
    assert get["floor"]["name"] == "bare uvicorn endpoint"
    assert len(get["samples"]) == len(get["floor"]["samples"]) > 0
    assert 0 < get["p50"] <= get["p90"] and get["ratio"] == pytest.approx(get["p50"] / get["floor"]["p50"])
    assert get["target"]["goal"] and isinstance(get["target"]["met"], bool)
    assert all(figure["group"] == "api" and figure["p50"] > 0 for figure in results["figures"])
    assert "GET machine" in done.stdout
    assert "kept" not in done.stdout  # every app was taken down before the daemon stopped, and its data dir removed


def test_a_plot_per_measured_curve(tmp_path: Path) -> None:
    done = bench("--quick", "--only", "runtime", "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["plots"] == ["lifecycle.png"]
    assert (tmp_path / "lifecycle.png").read_bytes().startswith(b"\x89PNG")
    names = [figure["name"].split(" ")[0] for figure in results["figures"]]
    assert names == ["resume", "start", "create", "update"]
    assert all(len(figure["samples"]) == 5 and figure["floor"]["samples"] for figure in results["figures"])
    ordered = results["order"]
    assert sorted(step["operation"] for step in ordered) == sorted(names)
    assert [step["p50_ms"] for step in ordered] == sorted(step["p50_ms"] for step in ordered)
    assert next(step["x_start"] for step in ordered if step["operation"] == "start") == 1.0
    assert "measured order:" in done.stdout


def test_an_unknown_group_is_refused_before_anything_starts(tmp_path: Path) -> None:
    done = bench("--only", "api,warp", "--out", str(tmp_path))
    assert done.returncode == 2 and "unknown group warp" in done.stderr
    assert not (tmp_path / "results.json").exists()
