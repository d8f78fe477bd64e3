"""JSON responses encoded with orjson: lists of thousands of machines are the API's largest replies."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse as StarletteJSONResponse


class JSONResponse(StarletteJSONResponse):
    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except TypeError:  # integers past 64 bits, which a client may put in a config: the stdlib takes them
            return super().render(content)
