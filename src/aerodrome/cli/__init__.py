"""The `aerodrome` command line."""

from __future__ import annotations

from aerodrome.cli.main import app, main

__all__ = ["app", "main"]
