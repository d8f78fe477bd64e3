"""`aerodrome bench`: every benchmark against one fresh daemon, each figure beside a floor measured in the same
run, written as a table, `results.json` and PNG plots."""

from __future__ import annotations

from aerodrome.bench.figures import ANCHORS, Figure, Goal, Target
from aerodrome.bench.host import host_info
from aerodrome.bench.lifecycle import describe_order, order
from aerodrome.bench.probe import Server, delete_every_app
from aerodrome.bench.report import markdown, table
from aerodrome.bench.suite import GROUPS, Plan, Results, caption, draw, run, write_json

__all__ = [
    "ANCHORS",
    "GROUPS",
    "Figure",
    "Goal",
    "Plan",
    "Results",
    "Server",
    "Target",
    "caption",
    "delete_every_app",
    "describe_order",
    "draw",
    "host_info",
    "markdown",
    "order",
    "run",
    "table",
    "write_json",
]
