"""The machine program and the edge service the multi-host tests and benchmarks share."""

from __future__ import annotations

from typing import Any

# each machine's page names it, so an answer shows which machine gave it
SELF_NAMING = 'mkdir -p /tmp/www && echo "$FLY_MACHINE_ID" > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www'


def http_service(*, autostart: bool = False) -> dict[str, Any]:
    """Port 80 of the edge to the machine's 8080, never stopped for idleness."""
    return {
        "protocol": "tcp",
        "internal_port": 8080,
        "autostop": False,
        "autostart": autostart,
        "ports": [{"port": 80, "handlers": ["http"]}],
    }
