"""A small stdio MCP server over a directory, used as the wrapped program in the MCP bridge tests.

Run as `python fs_server.py ROOT`; its tools list, read and write files under ROOT, and `whoami` returns the
process id so tests can tell which child process served a session.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
server = MCPServer("fs-test")


def _inside_root(path: str) -> Path:
    """Resolve a path, refusing anything outside the served directory."""
    resolved = (ROOT / path).resolve()
    if resolved != ROOT and ROOT not in resolved.parents:
        raise ValueError(f"{path} is outside {ROOT}")
    return resolved


@server.tool()
def list_directory(path: str) -> str:
    """List the entries of a directory, one per line, directories marked [DIR]."""
    entries = sorted(_inside_root(path).iterdir())
    return "\n".join(f"[{'DIR' if entry.is_dir() else 'FILE'}] {entry.name}" for entry in entries)


@server.tool()
def read_file(path: str) -> str:
    """Return a file's text."""
    return _inside_root(path).read_text()


@server.tool()
def write_file(path: str, content: str) -> str:
    """Write text to a file."""
    _inside_root(path).write_text(content)
    return f"wrote {len(content)} characters"


@server.tool()
def whoami() -> str:
    """Return this server process's id."""
    return str(os.getpid())


if __name__ == "__main__":
    server.run("stdio")
