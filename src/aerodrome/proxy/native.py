"""The edge's data path, compiled: the same typed modules, turned into C extensions by mypyc.

Per request, the edge runs a few dozen small Python functions; interpreted, they cost as much CPU as the
kernel's share of the exchange. mypyc compiles those modules as they are (attribute access on native classes
becomes a field read, calls between them direct C calls), which halves the instructions the edge spends on each
request (`bench/proxy/instructions.py`). The Python modules remain the source of truth:

- `build()` compiles `MODULES` into `_native/` beside this file and writes there a fingerprint of the sources
  it compiled (this package and `aerodrome.core`, whose types the compiled code relies on);
- `activate()` puts `_native/` first on the package's path only while that fingerprint still matches, so an
  edited module is never shadowed by a stale extension: the edge then runs as plain Python, same behaviour,
  slower, until the next build. `AERODROME_PURE_PYTHON=1` chooses plain Python outright.

`aerodrome build-edge` builds when the sources changed; `scripts/install-deps.sh` runs it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
DIRECTORY = PACKAGE / "_native"
# The per-request path: parsing and relaying HTTP, choosing a machine and counting its load.
MODULES = ("downstream", "upstream", "exchange", "messages", "balancer", "fleet", "directory", "context", "traffic")
_GROUP = "aerodrome.proxy.native_edge"  # names the shared runtime library, inside this package
_FINGERPRINT = DIRECTORY / "fingerprint"
_SOURCES = (PACKAGE, PACKAGE.parent / "core")

active = False  # whether this process runs the compiled modules


def fingerprint() -> str:
    """What the compiled modules were built from: the interpreter's ABI and every source they may depend on."""
    digest = hashlib.sha256(sys.implementation.cache_tag.encode())
    for directory in _SOURCES:
        for source in sorted(directory.glob("*.py")):
            digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


def is_fresh() -> bool:
    """Whether a build exists and was made from the sources as they are now."""
    try:
        return _FINGERPRINT.read_text().strip() == fingerprint()
    except OSError:
        return False


def activate(package_path: list[str]) -> bool:
    """Load the compiled modules from now on, if a build matches the sources; called by the package first."""
    global active
    if os.environ.get("AERODROME_PURE_PYTHON") or not is_fresh():
        return False
    package_path.insert(0, str(DIRECTORY))
    active = True
    return True


def build() -> None:
    """Compile `MODULES` into `DIRECTORY`. Raises `RuntimeError` with the compiler's last words on failure."""
    script = (
        "import sys\n"
        "from setuptools import setup\n"
        "from mypyc.build import mypycify\n"
        "modules, group, out, temp = sys.argv[1].split(','), sys.argv[2], sys.argv[3], sys.argv[4]\n"
        "setup(name='aerodrome-edge', ext_modules=mypycify(modules, opt_level='3', group_name=group),\n"
        "      script_args=['-q', 'build_ext', '--build-lib', out, '--build-temp', temp])\n"
    )
    sources = ",".join(str(PACKAGE / f"{name}.py") for name in MODULES)
    built_from = fingerprint()  # taken first: a source edited during the build leaves the build stale, as it is
    with tempfile.TemporaryDirectory(prefix="aerodrome-native-") as work:
        out, temp = Path(work, "lib"), Path(work, "temp")
        # Run apart from the project, so that its mypy configuration does not widen what is compiled.
        result = subprocess.run(
            [sys.executable, "-c", script, sources, _GROUP, str(out), str(temp)],
            cwd=work,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            last_words = (result.stdout + result.stderr).strip().splitlines()[-3:]
            raise RuntimeError(" / ".join(last_words) or f"exit status {result.returncode}")
        staged = Path(work, "native")
        shutil.copytree(out / "aerodrome" / "proxy", staged)
        Path(staged, "fingerprint").write_text(built_from + "\n")
        shutil.rmtree(DIRECTORY, ignore_errors=True)
        shutil.move(staged, DIRECTORY)
