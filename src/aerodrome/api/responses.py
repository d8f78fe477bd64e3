"""JSON responses encoded with orjson: lists of thousands of machines are the API's largest replies."""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.responses import JSONResponse as StarletteJSONResponse
from starlette.responses import Response


def encode(content: Any) -> bytes:
    try:
        return orjson.dumps(content)
    except TypeError:  # integers past 64 bits, which a client may put in a config: the stdlib takes them
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


class JSONResponse(StarletteJSONResponse):
    def render(self, content: Any) -> bytes:
        return encode(content)


class EncodedJSONResponse(Response):
    """A reply whose JSON is encoded already."""

    media_type = "application/json"
