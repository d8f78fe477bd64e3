"""Request bodies are bounded per route while they stream in: a declared length over the limit is refused before
a byte is read, and a body that grows past it stops being read and answers 413.

Handlers authenticate from the headers before they read a body, so a caller without a token never makes the
daemon buffer one; a reply sent before the body was read to its end closes the connection, so the rest of it is
not read either.
"""

from __future__ import annotations

import re

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aerodrome.api.limits import ApiLimits
from aerodrome.api.responses import encode

_MACHINE_CONFIG = re.compile(r"^/v1/apps/[^/]+/machines(?:/[^/]+)?/?$")  # create and update
CLOSE = (b"connection", b"close")


def body_limit(limits: ApiLimits, method: str, path: str) -> int:
    if method == "POST" and path.rstrip("/") == "/graphql":
        return limits.graphql_body_bytes
    if method == "POST" and _MACHINE_CONFIG.match(path):
        return limits.machine_body_bytes
    return limits.body_bytes


def too_large(limit: int) -> str:
    return f"request body too large: the limit is {limit} bytes"


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, limits: ApiLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(self.limits, scope["method"], scope["path"])
        declared: int | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = int(value) if value.isdigit() else None
            elif name == b"transfer-encoding":
                chunked = True
        if declared is not None and declared > limit:
            await refuse(send, 413, too_large(limit))
            return
        received = 0
        complete = not chunked and not declared

        async def counted() -> Message:
            nonlocal received, complete
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, too_large(limit))  # `closing` closes the connection
                complete = complete or not message.get("more_body", False)
            return message

        async def closing(message: Message) -> None:
            # A reply before the body's end: uvicorn would otherwise read the rest of it, and discard it.
            if message["type"] == "http.response.start" and not complete:
                message = {**message, "headers": [*message.get("headers", []), CLOSE]}
            await send(message)

        await self.app(scope, counted, closing)


async def refuse(send: Send, status: int, error: str) -> None:
    """A reply in Fly's error shape that closes the connection, from outside the application."""
    body = encode({"error": error})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), CLOSE]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
