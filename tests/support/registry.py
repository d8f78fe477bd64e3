"""A real embedded registry on a free loopback port, in a temporary directory removed afterwards."""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from aerodrome.runtime.registry import EmbeddedRegistry


def free_loopback_port() -> int:
    """A TCP port nothing listens on right now (the kernel's choice, so parallel runs do not collide)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def running_registry(data_dir: Path | None = None) -> AsyncIterator[EmbeddedRegistry]:
    """Start an EmbeddedRegistry on 127.0.0.1:<free port>; stop it and remove its files on exit."""
    owned = data_dir is None
    directory = Path(tempfile.mkdtemp(prefix="aerodrome-registry-")) if data_dir is None else data_dir
    registry = EmbeddedRegistry(directory, listen="127.0.0.1:0")
    try:
        await registry.start()
        yield registry
    finally:
        await registry.stop()
        if owned:
            shutil.rmtree(directory, ignore_errors=True)
