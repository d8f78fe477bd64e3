"""The agent's routes: one per `HostAgent` method, each parsing its request and shaping its reply."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel

from aerodrome.agent import wire
from aerodrome.core import InvalidArgumentError, OutputCursor

if TYPE_CHECKING:
    from aerodrome.agent.server import Call, Handler

OUTPUT_LIMIT = 1024 * 1024  # the most bytes of output one read returns


async def info(call: Call) -> BaseModel:
    return wire.InfoReply(value=await call.agent.info())


async def resolve_image(call: Call) -> BaseModel:
    body = wire.decode(wire.ResolveImageRequest, call.body)
    work = call.agent.resolve_image(body.image, body.grant, deadline=body.deadline)
    return wire.ImageRefReply(value=await call.within(body.deadline, work))


async def prepare(call: Call) -> BaseModel:
    body = wire.decode(wire.PrepareRequest, call.body)
    if body.spec.machine_id != call.id():
        raise InvalidArgumentError("the spec's machine_id is not the machine of the path")
    work = call.agent.prepare(body.spec, key=body.key, deadline=body.deadline)
    return wire.PreparedReply(value=await call.within(body.deadline, work))


async def start(call: Call) -> BaseModel:
    body = wire.decode(wire.StartRequest, call.body)
    work = call.agent.start(call.id(), body.version, key=body.key, deadline=body.deadline)
    return wire.NoneReply(value=await call.within(body.deadline, work))


async def stop(call: Call) -> BaseModel:
    body = wire.decode(wire.StopRequest, call.body)
    machine = call.id()
    work = call.agent.stop(machine, signal=body.signal, timeout=body.timeout, key=body.key, deadline=body.deadline)
    return wire.ExitReply(value=await call.within(body.deadline, work))


async def suspend(call: Call) -> BaseModel:
    body = wire.decode(wire.KeyedRequest, call.body)
    work = call.agent.suspend(call.id(), key=body.key, deadline=body.deadline)
    return wire.NoneReply(value=await call.within(body.deadline, work))


async def signal(call: Call) -> BaseModel:
    body = wire.decode(wire.SignalRequest, call.body)
    work = call.agent.signal(call.id(), body.signal, deadline=body.deadline)
    return wire.NoneReply(value=await call.within(body.deadline, work))


async def destroy(call: Call) -> BaseModel:
    body = wire.decode(wire.KeyedRequest, call.body)
    work = call.agent.destroy(call.id(), key=body.key, deadline=body.deadline)
    return wire.NoneReply(value=await call.within(body.deadline, work))


async def status(call: Call) -> BaseModel:
    return wire.MachineReply(value=await call.agent.status(call.id()))


async def machines(call: Call) -> BaseModel:
    return wire.MachinesReply(value=await call.agent.machines())


async def exec_(call: Call) -> BaseModel:
    body = wire.decode(wire.ExecRequest, call.body)
    work = call.agent.exec(
        call.id(), body.command, body.stdin, body.timeout, deadline=body.deadline, container=body.container
    )
    return wire.ExecReply(value=await call.within(body.deadline, work))


async def ps(call: Call) -> BaseModel:
    return wire.ProcessesReply(value=await call.agent.ps(call.id()))


async def set_memory(call: Call) -> BaseModel:
    body = wire.decode(wire.MemoryRequest, call.body)
    work = call.agent.set_memory(call.id(), body.memory_mb, deadline=body.deadline)
    return wire.NoneReply(value=await call.within(body.deadline, work))


async def reclaim_memory(call: Call) -> BaseModel:
    body = wire.decode(wire.ReclaimRequest, call.body)
    work = call.agent.reclaim_memory(call.id(), body.amount_mb, deadline=body.deadline)
    return wire.IntReply(value=await call.within(body.deadline, work))


async def memory_usage(call: Call) -> BaseModel:
    return wire.IntReply(value=await call.agent.memory_usage(call.id()))


async def machine_usage(call: Call) -> BaseModel:
    return wire.MachineUsageReply(value=await call.agent.machine_usage(call.id()))


async def read_output(call: Call) -> BaseModel:
    cursor = OutputCursor(call.request.query_params.get("file", "")[:256], call.query_int("offset", 0))
    limit = call.query_int("limit", OUTPUT_LIMIT, low=1, high=OUTPUT_LIMIT)
    return wire.OutputReply(value=await call.agent.read_output(call.id(), cursor, limit))


async def events(call: Call) -> BaseModel:
    after = call.query_int("after", 0)
    limit = call.query_int("limit", 500, low=1, high=call.limits.event_limit)
    wait = min(call.query_float("wait", 0.0), call.limits.event_wait)
    return wire.EventsReply(value=await call.agent.events(after, limit=limit, wait=wait))


async def acknowledge(call: Call) -> BaseModel:
    body = wire.decode(wire.AcknowledgeRequest, call.body)
    await call.agent.acknowledge(body.cursor)
    return wire.NoneReply(value=None)


async def create_volume(call: Call) -> BaseModel:
    body = wire.decode(wire.CreateVolumeRequest, call.body)
    work = call.agent.create_volume(
        call.id(),
        body.size_bytes,
        body.fstype,
        from_snapshot=body.from_snapshot,
        from_volume=body.from_volume,
        key=body.key,
        deadline=body.deadline,
    )
    return wire.NoneReply(value=await call.within(body.deadline, work))


async def extend_volume(call: Call) -> BaseModel:
    body = wire.decode(wire.ExtendVolumeRequest, call.body)
    work = call.agent.extend_volume(call.id(), body.size_bytes, key=body.key, deadline=body.deadline)
    return wire.BoolReply(value=await call.within(body.deadline, work))


async def snapshot_volume(call: Call) -> BaseModel:
    body = wire.decode(wire.SnapshotVolumeRequest, call.body)
    work = call.agent.snapshot_volume(call.id(), body.snapshot_id, key=body.key, deadline=body.deadline)
    return wire.SnapshotReply(value=await call.within(body.deadline, work))


async def delete_volume(call: Call) -> BaseModel:
    body = wire.decode(wire.KeyedRequest, call.body)
    work = call.agent.delete_volume(call.id(), key=body.key, deadline=body.deadline)
    return wire.NoneReply(value=await call.within(body.deadline, work))


async def delete_snapshot(call: Call) -> BaseModel:
    body = wire.decode(wire.KeyedRequest, call.body)
    work = call.agent.delete_snapshot(call.id(), key=body.key, deadline=body.deadline)
    return wire.NoneReply(value=await call.within(body.deadline, work))


async def volume_usage(call: Call) -> BaseModel:
    return wire.UsageReply(value=await call.agent.volume_usage(call.id()))


async def stored_volumes(call: Call) -> BaseModel:
    volumes, snapshots = await call.agent.stored_volumes()
    return wire.StoredReply(value=wire.StoredVolumes(volumes=volumes, snapshots=snapshots))


MACHINE = "/v1/machines/{id}"
VOLUME = "/v1/volumes/{id}"
ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/v1/info", info),
    ("POST", "/v1/images/resolve", resolve_image),
    ("GET", "/v1/machines", machines),
    ("GET", MACHINE, status),
    ("POST", f"{MACHINE}/prepare", prepare),
    ("POST", f"{MACHINE}/start", start),
    ("POST", f"{MACHINE}/stop", stop),
    ("POST", f"{MACHINE}/suspend", suspend),
    ("POST", f"{MACHINE}/signal", signal),
    ("POST", f"{MACHINE}/destroy", destroy),
    ("POST", f"{MACHINE}/exec", exec_),
    ("GET", f"{MACHINE}/ps", ps),
    ("POST", f"{MACHINE}/memory", set_memory),
    ("GET", f"{MACHINE}/memory", memory_usage),
    ("POST", f"{MACHINE}/reclaim", reclaim_memory),
    ("GET", f"{MACHINE}/usage", machine_usage),
    ("GET", f"{MACHINE}/output", read_output),
    ("GET", "/v1/events", events),
    ("POST", "/v1/events/acknowledge", acknowledge),
    ("GET", "/v1/volumes", stored_volumes),
    ("POST", VOLUME, create_volume),
    ("GET", f"{VOLUME}/usage", volume_usage),
    ("POST", f"{VOLUME}/extend", extend_volume),
    ("POST", f"{VOLUME}/snapshot", snapshot_volume),
    ("POST", f"{VOLUME}/delete", delete_volume),
    ("POST", "/v1/snapshots/{id}/delete", delete_snapshot),
]
