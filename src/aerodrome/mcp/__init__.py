"""aerodrome.mcp: serve a stdio MCP server over HTTP inside a machine, and bridge it back to stdio locally.

`wrap` is the server (Fly's `fly mcp wrap` protocol plus Streamable HTTP); it is one stdlib-only module that image
builds copy in on its own. `run_bridge` is the local end, like `fly mcp proxy`.
"""

from __future__ import annotations

from aerodrome.mcp import wrap
from aerodrome.mcp.bridge import BridgeError, BridgeOptions, run_bridge
from aerodrome.mcp.wrap import WrapConfig, WrapServer

__all__ = ["BridgeError", "BridgeOptions", "WrapConfig", "WrapServer", "run_bridge", "wrap"]
