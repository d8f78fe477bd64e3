"""`fly-request-id` on every reply, as Fly's API sends it: flyctl prints it in errors so a failure can be traced."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aerodrome.core import ulid

HEADER = b"fly-request-id"


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ulid().lower().encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (HEADER, request_id)]
            await send(message)

        await self.app(scope, receive, send_with_id)
