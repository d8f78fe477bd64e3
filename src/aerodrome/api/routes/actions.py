"""Machine actions: start, stop, suspend, restart, signal, cordon, wait, events, versions, exec, ps, memory."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aerodrome.api import render
from aerodrome.api.context import Call
from aerodrome.api.responses import JSONResponse
from aerodrome.core import (
    EXEC_TIMEOUT_DEFAULT,
    EXEC_TIMEOUT_MAX,
    MAX_VALUE,
    InvalidArgumentError,
    ProcessInfo,
    parse_duration,
    parse_int,
    parse_signal,
    parse_text,
)

MAX_EXEC_ARGS = 1024
SIGKILL = 9
#: `ps?sort_by=`: the process fields a listing can be ordered by.
PS_SORT_FIELDS = ("pid", "cpu", "rss", "rtime", "stime", "command", "directory")


def _stop_timeout(value: object) -> float | None:
    """A stop or restart timeout; absent, empty or zero (fly-go sends `"0s"` when none is set) is the default."""
    if value is None or value == "":
        return None
    return parse_duration(value, field="stop timeout") or None


async def start(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    await call.limit("start", call.machine_id)
    previous = await call.plane.machines.start(app, call.machine_id, call.nonce)
    return JSONResponse({"previous_state": previous.value, "migrated": False, "new_host": ""})


async def stop(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    await call.limit("stop", call.machine_id)
    body = await call.body(required=False)
    signal = parse_signal(body["signal"]) if body.get("signal") else None
    timeout = _stop_timeout(body.get("timeout"))
    await call.plane.machines.stop(app, call.machine_id, call.nonce, signal=signal, timeout=timeout)
    return JSONResponse({"ok": True})


async def suspend(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    await call.limit("suspend", call.machine_id)
    await call.plane.machines.suspend(app, call.machine_id, call.nonce)
    return JSONResponse({"ok": True})


async def restart(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    await call.limit("restart", call.machine_id)
    query = request.query_params
    signal = parse_signal(query["signal"]) if query.get("signal") else None
    if call.query_bool("force_stop"):  # fly-go's `force_stop=true`: no grace before the restart
        signal = SIGKILL
    timeout = _stop_timeout(query.get("timeout"))
    await call.plane.machines.restart(app, call.machine_id, call.nonce, signal=signal, timeout=timeout)
    return JSONResponse({"ok": True})


async def signal(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    await call.limit("signal", call.machine_id)
    body = await call.body()
    await call.plane.machines.signal(app, call.machine_id, parse_signal(body.get("signal")))
    return JSONResponse({"ok": True})


async def cordon(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    await call.plane.machines.set_cordoned(app, call.machine_id, request.url.path.endswith("/cordon"), call.nonce)
    return JSONResponse({"ok": True})


async def wait(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    query = request.query_params
    timeout = call.query_int("timeout", 60)
    if not 1 <= timeout <= 60:
        raise InvalidArgumentError("invalid timeout: must be between 1 and 60 seconds")
    machine, event_id = await call.plane.machines.wait(
        app,
        call.machine_id,
        call.query_list("state") or ["started"],
        version=query.get("version") or query.get("instance_id") or None,
        from_event_id=query.get("from_event_id") or None,
        timeout=float(timeout),
    )
    return JSONResponse(
        {"ok": True, "state": machine.state.value, "version": machine.instance_id, "event_id": event_id or ""}
    )


async def events(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    machine = await call.plane.machines.find(app, call.machine_id, include_deleted=True)
    limit = min(max(call.query_int("limit", 20), 1), 50)
    return JSONResponse([render.event(e) for e in await call.plane.store.list_events(machine.id, limit=limit)])


async def versions(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    machine = await call.plane.machines.find(app, call.machine_id, include_deleted=True)
    return JSONResponse([render.version(v) for v in await call.plane.store.list_versions(machine.id)])


def _exec_request(body: dict[str, object]) -> tuple[list[str], bytes | None, int]:
    """The command, stdin and timeout (seconds) of an exec body, each bounded."""
    command = body.get("command") or body.get("cmd")
    if isinstance(command, str):
        command = ["sh", "-c", command]  # the deprecated `cmd` string form
    if not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command):
        raise InvalidArgumentError("invalid command: must be a non-empty list of strings")
    if len(command) > MAX_EXEC_ARGS:
        raise InvalidArgumentError(f"invalid command: {len(command)} arguments, at most {MAX_EXEC_ARGS} allowed")
    command = [parse_text(a, f"command[{i}]", MAX_VALUE) for i, a in enumerate(command)]
    stdin = body.get("stdin")
    if stdin is not None and not isinstance(stdin, str):
        raise InvalidArgumentError("invalid stdin: must be a string")
    # 0 or absent is the default, as on Fly; the longest is bounded so no request holds a process for good
    timeout = parse_int(body.get("timeout") or EXEC_TIMEOUT_DEFAULT, "exec timeout", 1, EXEC_TIMEOUT_MAX)
    return command, stdin.encode() if stdin else None, timeout


async def exec_(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    await call.limit("exec", call.machine_id)
    body = await call.body()
    command, stdin, timeout = _exec_request(body)
    container = parse_text(body.get("container") or "", "container", MAX_VALUE)
    result = await call.plane.machines.exec(app, call.machine_id, command, stdin, float(timeout), container)
    reply: dict[str, object] = {
        "exit_code": result.exit_code,
        "exit_signal": result.exit_signal,
        "stdout": result.stdout.decode(errors="replace"),
        "stderr": result.stderr.decode(errors="replace"),
    }
    if result.truncated:
        reply["truncated"] = True  # beyond EXEC_OUTPUT_CAP; an extra field, which Fly's clients ignore
    return JSONResponse(reply)


def _sorted_processes(call: Call, processes: list[ProcessInfo]) -> list[ProcessInfo]:
    """`sort_by` one of PS_SORT_FIELDS, `order` `asc` (the default) or `desc`."""
    sort_by = call.request.query_params.get("sort_by") or ""
    order = (call.request.query_params.get("order") or "asc").lower()
    if sort_by and sort_by not in PS_SORT_FIELDS:
        raise InvalidArgumentError(f"invalid sort_by {sort_by[:40]!r}: use one of {', '.join(PS_SORT_FIELDS)}")
    if order not in ("asc", "desc"):
        raise InvalidArgumentError(f"invalid order {order[:40]!r}: use asc or desc")
    if not sort_by:
        return processes
    return sorted(processes, key=lambda p: getattr(p, sort_by), reverse=order == "desc")


async def ps(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    processes = _sorted_processes(call, await call.plane.machines.ps(app, call.machine_id))
    return JSONResponse(
        [
            {
                "pid": p.pid,
                "command": p.command,
                "cpu": p.cpu,
                "rss": p.rss,
                "rtime": p.rtime,
                "stime": p.stime,
                "directory": p.directory,
                "listen_sockets": [{"address": a, "proto": proto} for a, proto in p.listen_sockets],
            }
            for p in processes
        ]
    )


async def memory(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    if request.method == "PUT":
        await call.limit("memory", call.machine_id)
        body = await call.body()
        limit_mb, available_mb = await call.plane.machines.set_memory(
            app, call.machine_id, body.get("limit_mb"), call.nonce
        )
    else:
        limit_mb, available_mb = await call.plane.machines.memory(app, call.machine_id)
    return JSONResponse({"limit_mb": limit_mb, "available_mb": available_mb})


async def reclaim_memory(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    await call.limit("memory", call.machine_id)
    body = await call.body()
    actual = await call.plane.machines.reclaim_memory(app, call.machine_id, body.get("amount_mb"))
    return JSONResponse({"actual_mb": actual})


_M = "/v1/apps/{app_name}/machines/{machine_id}"
routes = [
    Route(f"{_M}/start", start, methods=["POST"]),
    Route(f"{_M}/stop", stop, methods=["POST"]),
    Route(f"{_M}/suspend", suspend, methods=["POST"]),
    Route(f"{_M}/restart", restart, methods=["POST"]),
    Route(f"{_M}/signal", signal, methods=["POST"]),
    Route(f"{_M}/cordon", cordon, methods=["POST"]),
    Route(f"{_M}/uncordon", cordon, methods=["POST"]),
    Route(f"{_M}/wait", wait, methods=["GET"]),
    Route(f"{_M}/events", events, methods=["GET"]),
    Route(f"{_M}/versions", versions, methods=["GET"]),
    Route(f"{_M}/exec", exec_, methods=["POST"]),
    Route(f"{_M}/ps", ps, methods=["GET"]),
    Route(f"{_M}/memory", memory, methods=["GET", "PUT"]),
    Route(f"{_M}/memory/reclaim", reclaim_memory, methods=["POST"]),
]
