"""Each started machine's `/.fly/api`: the Machines API on a Unix socket, no token needed, its own app only.

The runtime bind-mounts a host directory read-only at the machine's /.fly and, before each start, has this
listen at `api` in it. A request is served by the API as the machine's organisation (an in-memory token the
daemon holds), but only under `/v1/apps/<its app>` and the machine's own tokens (`/v1/tokens/oidc`, `/kms`):
anything else is refused in Fly's shape, 403.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.server import ServerState

from aerodrome.inside.directory import Directory

TokenFor = Callable[[str], str]  # organisation slug → a token of it

MACHINE_KEY = "fly_machine"  # the scope state's entry naming the machine whose socket a request came on
MACHINE_TOKENS = frozenset({"/v1/tokens/oidc", "/v1/tokens/kms"})  # tokens a machine asks for about itself


async def _error(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _within(path: str, prefix: str) -> bool:
    """`path` is `prefix` or under it, and climbs nowhere (no empty, `.` or `..` segment)."""
    if path != prefix and not path.startswith(prefix + "/"):
        return False
    return not any(part in ("", ".", "..") for part in path[len(prefix) :].split("/")[1:])


class GuestApi:
    """The sockets of every started machine, served by one ASGI app scoped per machine."""

    def __init__(self, app: ASGIApp, directory: Directory, token_for: TokenFor) -> None:
        self._app = app
        self._directory = directory
        self._token_for = token_for
        self._tokens: dict[str, str] = {}
        self._config = uvicorn.Config(
            self._scoped, interface="asgi3", lifespan="off", log_config=None, log_level="warning"
        )
        self._config.load()
        self._state = ServerState()
        self._servers: dict[str, asyncio.Server] = {}

    async def listen(self, machine_id: str, path: Path) -> None:
        """Serve `machine_id`'s socket at `path` (a start hook); a socket left from an earlier run is replaced."""
        await self.close_machine(machine_id)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(path))
            os.chmod(path, 0o666)  # any user of the machine may call its API, as on Fly
            sock.setblocking(False)
            config, state, app_state = self._config, self._state, {MACHINE_KEY: machine_id}

            def protocol() -> asyncio.Protocol:
                made: asyncio.Protocol = config.http_protocol_class(  # type: ignore[call-arg]
                    config=config, server_state=state, app_state=app_state
                )
                return made

            self._servers[machine_id] = await asyncio.get_running_loop().create_unix_server(protocol, sock=sock)
        except BaseException:
            sock.close()
            raise

    async def close_machine(self, machine_id: str, *_: object) -> None:
        """Stop serving a machine's socket (an exit callback: the next start listens anew)."""
        server = self._servers.pop(machine_id, None)
        if server is not None:
            server.close()

    async def close(self) -> None:
        for machine_id in list(self._servers):
            await self.close_machine(machine_id)

    async def _scoped(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        machine_id = scope.get("state", {}).get(MACHINE_KEY, "")
        peer = await self._directory.machine(machine_id)
        if peer is None:
            await _error(send, 404, "machine not found")
            return
        prefix = f"/v1/apps/{peer.app}"
        if not _within(scope["path"], prefix) and scope["path"] not in MACHINE_TOKENS:
            await _error(send, 403, f"a machine's /.fly/api reaches only its own app's {prefix}")
            return
        token = self._tokens.get(peer.org) or self._tokens.setdefault(peer.org, self._token_for(peer.org))
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"authorization"]
        headers.append((b"authorization", f"Bearer {token}".encode()))
        await self._app({**scope, "headers": headers}, receive, send)
