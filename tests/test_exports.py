"""Each package lists its public names in `__all__`, and every listed name exists."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = [
    "core",
    "control",
    "store",
    "runtime",
    "api",
    "proxy",
    "mcp",
    "cli",
    "client",
    "agent",
    "bench",
    "dashboard",
    "inside",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_exist(name: str) -> None:
    package = importlib.import_module(f"aerodrome.{name}")
    exported = getattr(package, "__all__", None)
    assert exported, f"aerodrome.{name} lists no public names"
    missing = [symbol for symbol in exported if not hasattr(package, symbol)]
    assert not missing, f"aerodrome.{name}.__all__ names what it does not define: {missing}"
    assert len(set(exported)) == len(exported)
