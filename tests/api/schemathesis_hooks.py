"""Schemathesis hooks: aim generated requests at real records, so the run reaches past 404s into the handlers."""

from __future__ import annotations

import os
from typing import Any

import schemathesis


@schemathesis.hook
def map_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> dict[str, Any] | None:
    if not path_parameters:
        return path_parameters
    known = {
        "app_name": os.environ["AERODROME_CONFORMANCE_APP"],
        "machine_id": os.environ["AERODROME_CONFORMANCE_MACHINE"],
        "volume_id": os.environ["AERODROME_CONFORMANCE_VOLUME"],
        "org_slug": "personal",
    }
    return {key: known.get(key, value) for key, value in path_parameters.items()}
