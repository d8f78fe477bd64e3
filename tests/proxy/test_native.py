"""The compiled data path: loaded only while it matches the sources, and the edge behaves the same without it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import aerodrome
from aerodrome.proxy import native

REPO = Path(__file__).resolve().parents[2]
PROBE = (
    "import aerodrome.proxy.downstream as d; from aerodrome.proxy import native; "
    "print(native.active, d.__file__.endswith('.so'))"
)


def probe(pythonpath: Path | None = None, **env: str) -> str:
    """Which data path a fresh interpreter loads: `active compiled-module`."""
    environ = {k: v for k, v in os.environ.items() if k != "AERODROME_PURE_PYTHON"} | env
    if pythonpath is not None:
        environ["PYTHONPATH"] = str(pythonpath)
    done = subprocess.run([sys.executable, "-c", PROBE], env=environ, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_the_build_matches_the_sources() -> None:
    assert native.is_fresh(), "the edge's compiled data path is missing or stale: run `aerodrome build-edge`"
    assert probe() == "True True"


def test_plain_python_on_request() -> None:
    assert probe(AERODROME_PURE_PYTHON="1") == "False False"


def test_a_changed_source_is_never_shadowed_by_its_stale_build(tmp_path: Path) -> None:
    if not native.is_fresh():
        pytest.fail("no compiled data path to compare with: run `aerodrome build-edge`")
    package = Path(aerodrome.__file__).parent
    copy = tmp_path / "aerodrome"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert probe(tmp_path) == "True True"  # the fingerprint is of contents, so an exact copy is still fresh

    upstream = copy / "proxy" / "upstream.py"
    upstream.write_text(upstream.read_text() + "\n# edited\n")
    assert probe(tmp_path) == "False False"

    core = copy / "core" / "__init__.py"  # the compiled code relies on core's types too
    upstream.write_text(upstream.read_text().removesuffix("\n# edited\n"))
    core.write_text(core.read_text() + "\n# edited\n")
    assert probe(tmp_path) == "False False"


@pytest.mark.skipif(bool(os.environ.get("AERODROME_PURE_PYTHON")), reason="covered: already the plain-Python run")
def test_the_edge_suite_passes_as_plain_python() -> None:
    """The same proxy tests, with the data path interpreted: the fallback must not drift from the build."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/proxy"],
        cwd=REPO,
        env=os.environ | {"AERODROME_PURE_PYTHON": "1"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
