"""What the isolation tests put in a machine: the static probe (compiled once, cached by its source's hash) and
the host's own python3 with just the files a script needs."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

PROBE_SOURCE = Path(__file__).parent / "probe" / "probe.c"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "aerodrome" / "probe"
PYTHON = Path("/usr/bin/python3")


@pytest.fixture(scope="session")
def probe_binary() -> bytes:
    """The probe, built with `gcc -static -O2` (once per source: the cache is keyed by its hash)."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed (the probe is compiled by the tests)")
    source = PROBE_SOURCE.read_bytes()
    target = CACHE_DIR / f"probe-{hashlib.sha256(source).hexdigest()[:16]}"
    if not target.exists():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE_DIR) as scratch:
            built = Path(scratch) / "probe"
            argv = ["gcc", "-static", "-O2", "-Wall", "-Werror", "-o", str(built), str(PROBE_SOURCE)]
            compiled = subprocess.run(argv, capture_output=True, text=True, timeout=120)
            assert compiled.returncode == 0, compiled.stderr
            built.replace(target)  # atomic: parallel sessions never see half a binary
    return target.read_bytes()


def python_files(script: Path) -> tuple[str, dict[str, bytes], dict[str, int]]:
    """The interpreter's path, and the files (and their modes) with which the host's python3 runs `script` as
    `python3 -I -S`: the interpreter, the shared libraries it and its extension modules load, and the standard
    library's modules the script imports, all at their host paths. Found by running the script here once."""
    if not PYTHON.exists():
        pytest.skip(f"{PYTHON} is not installed")
    interpreter = PYTHON.resolve()
    with tempfile.NamedTemporaryFile("r", suffix=".json") as listing:
        record = (
            "import json, sys; exec(compile(open(sys.argv[1]).read(), sys.argv[1], 'exec')); "
            "json.dump([m.__file__ for m in list(sys.modules.values()) if getattr(m, '__file__', None)], "
            "open(sys.argv[2], 'w'))"
        )
        subprocess.run([str(interpreter), "-I", "-S", "-c", record, str(script), listing.name], check=True, timeout=60)
        modules = {Path(path) for path in json.load(listing) if not path.startswith(str(script))}
    binaries = [interpreter, *(path for path in modules if path.suffix == ".so")]
    libraries = {library for binary in binaries for library in _shared_libraries(binary)}
    files = {str(path): path.read_bytes() for path in (*binaries, *modules, *libraries)}
    modes = {str(path): 0o755 for path in (*binaries, *libraries)}
    return str(interpreter), files, modes


def _shared_libraries(binary: Path) -> list[Path]:
    listing = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True, timeout=10).stdout
    return [Path(found) for found in re.findall(r"(?:=> |^\s*)(/\S+)", listing, re.MULTILINE)]
