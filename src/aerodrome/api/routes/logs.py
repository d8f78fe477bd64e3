"""Machine logs in Fly's logs API shape: a page with a `next_token` (as flyctl polls it), or a follow stream.

`GET /api/v1/apps/{app}/logs?instance=&region=&next_token=` answers `{"data": [{"id", "type", "attributes":
{"timestamp", "message", "level", "instance", "region", "meta"}}], "meta": {"next_token"}}`: without a token,
the app's newest lines; with one, the lines after it, a page at a time. An empty page keeps the token, so a
poller asks again from the same place. `follow=true` turns the reply into chunked NDJSON
(`application/x-ndjson`): one entry per line as it is stored, a blank line every 15 s of silence, until the
client goes. `GET /v1/apps/{app}/machines/{id}/logs` is the same for one machine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from aerodrome.api.context import Call
from aerodrome.api.responses import JSONResponse, encode
from aerodrome.control import MachineLogs
from aerodrome.core import App, InvalidArgumentError, LogLine

HEARTBEAT_SECONDS = 15.0


def entry(line: LogLine) -> dict[str, Any]:
    """One line as Fly's logs API shows it."""
    seconds, micros = divmod(line.timestamp_us, 1_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{micros:06d}000Z"
    meta = {"instance": line.machine_id, "region": line.region, "event": {"provider": line.provider}}
    attributes = {
        "timestamp": stamp,
        "message": line.message,
        "level": line.level,
        "instance": line.machine_id,
        "region": line.region,
        "meta": meta,
    }
    return {"id": str(line.id), "type": "logs", "attributes": attributes}


def _token(call: Call) -> int | None:
    raw = call.request.query_params.get("next_token", "")
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise InvalidArgumentError(f"invalid next_token {raw[:40]!r}: use the next_token of a previous reply")
    return int(raw)


class _Query:
    def __init__(self, call: Call, app: App, machine_id: str | None) -> None:
        params = call.request.query_params
        self.call, self.app = call, app
        self.machine_id = machine_id or params.get("instance") or None
        self.region = params.get("region") or None
        self.after = _token(call)

    async def page(self) -> list[LogLine]:
        size = self.call.plane.logs.settings.page_size
        return await self.call.plane.store.read_logs(
            self.app.name, after=self.after, machine_id=self.machine_id, region=self.region, limit=size
        )

    async def next_token(self, lines: list[LogLine]) -> int:
        if lines:
            return lines[-1].id
        return self.after if self.after is not None else await self.call.plane.store.last_log_id()


async def app_logs(request: Request) -> Response:
    call = await Call.of(request)
    return await _answer(call, _Query(call, await call.app(), None))


async def machine_logs(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    machine = await call.plane.machines.find(app, call.machine_id, include_deleted=True)
    return await _answer(call, _Query(call, app, machine.id))


async def _answer(call: Call, query: _Query) -> Response:
    if call.query_bool("follow"):
        return StreamingResponse(_follow(call, query), media_type="application/x-ndjson")
    lines = await query.page()
    token = await query.next_token(lines)
    return JSONResponse({"data": [entry(line) for line in lines], "meta": {"next_token": str(token)}})


def _follow(call: Call, query: _Query) -> AsyncIterator[bytes]:
    """The stream, admitted before the reply starts: past the bounds, a 429 rather than a stream."""
    logs: MachineLogs = call.plane.logs
    org = call.caller.org_slug
    logs.admit_stream(org)
    return _stream(logs, org, query)


async def _stream(logs: MachineLogs, org: str, query: _Query) -> AsyncIterator[bytes]:
    try:
        silent = 0.0
        while True:
            lines = await query.page()
            if lines:
                query.after = lines[-1].id
                yield b"".join(encode(entry(line)) + b"\n" for line in lines)
                silent = 0.0
                continue
            if query.after is None:
                query.after = await query.next_token(lines)
            if silent >= HEARTBEAT_SECONDS:
                yield b"\n"
                silent = 0.0
            await logs.next_append(1.0)
            silent += 1.0
    finally:
        logs.release_stream(org)


routes = [
    Route("/api/v1/apps/{app_name}/logs", app_logs, methods=["GET"]),
    Route("/v1/apps/{app_name}/machines/{machine_id}/logs", machine_logs, methods=["GET"]),
]
