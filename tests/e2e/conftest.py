"""The MCP image, built once per test session and cached on disk between runs (keyed by its inputs)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

from aerodrome.cli.mcp_image import McpImageRecipe, build_mcp_layout

FILESYSTEM_SERVER = "@modelcontextprotocol/server-filesystem"
# Messages of a build that failed because the package registries are out of reach, not because of the build.
UNREACHABLE = ("Failed getting release file", "Temporary failure in name resolution", "Could not resolve host")


@pytest.fixture(scope="session")
def mcp_layout() -> Path:
    """The `flyio/mcp` image (filesystem server preinstalled) as an OCI layout in the on-disk cache."""
    if os.geteuid() != 0:
        pytest.skip("building the MCP image needs root (debootstrap)")
    for tool in ("debootstrap", "umoci", "skopeo"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (run scripts/install-deps.sh)")
    try:
        return build_mcp_layout(McpImageRecipe(preinstall=(FILESYSTEM_SERVER,)))
    except httpx.TransportError as exc:
        pytest.skip(f"the MCP image cannot be built here: the npm registry is unreachable ({exc})")
    except RuntimeError as exc:
        if any(marker in str(exc) for marker in UNREACHABLE):
            pytest.skip(f"the MCP image cannot be built here: a package registry is unreachable ({exc})")
        raise
