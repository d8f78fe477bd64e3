"""The agent's wire format: every type crosses and comes back equal, and every error kind comes back as itself."""

from __future__ import annotations

import time

import orjson
import pytest

from aerodrome.agent import wire
from aerodrome.core import (
    AerodromeError,
    CapacityError,
    Deadline,
    ExecResult,
    ExitInfo,
    FailedPreconditionError,
    GuestFile,
    HostEvent,
    HostEventKind,
    HostInfo,
    HostMachine,
    HostState,
    InsufficientStorageError,
    InvalidArgumentError,
    MachineVersionSpec,
    OutputChunk,
    OutputCursor,
    PreparedVersion,
    ProcessInfo,
    PullGrant,
    RateLimitedError,
    RuntimeFailureError,
    SnapshotInfo,
    VolumeAttachment,
    VolumeUsage,
)

SPEC = MachineVersionSpec(
    machine_id="148e21ea7e3389",
    version="01J00000000000000000000000",
    app_name="wire",
    org_network_id=7,
    image="registry.local/wire/app:1",
    image_digest="sha256:" + "a" * 64,
    grant=PullGrant("personal", frozenset({"personal", "wire"})),
    init_exec=("sh", "-c", "exec sleep 1"),
    env={"NAME": "wire", "UNICODE": "été ✈"},
    files=(GuestFile("/etc/blob", bytes(range(256)), 0o600), GuestFile("/empty", b"")),
    cpus=2,
    memory_mb=512,
    mounts=(VolumeAttachment("vol_1234", "/data"),),
    hostname="wire-host",
    stop_signal=15,
    stop_timeout=2.5,
)
EXIT = ExitInfo(137, 9, oom_killed=True, requested_stop=False, exited_at="2026-12-03T06:00:00Z")

ROUND_TRIPS = [
    (wire.PrepareRequest, {"spec": SPEC, "key": "k1", "deadline": Deadline(1e9)}),
    (wire.ExecRequest, {"command": ["cat"], "stdin": b"\x00\xff\n", "timeout": 3.0, "deadline": Deadline(1e9)}),
    (
        wire.CreateVolumeRequest,
        {"size_bytes": 1, "fstype": "ext4", "from_snapshot": "vs_1", "key": "k", "deadline": Deadline(2.5)},
    ),
    (wire.InfoReply, {"value": HostInfo("host-a", "iad")}),
    (wire.InfoReply, {"value": HostInfo("host-b", "ams", cpus=2, memory_mb=24105, disk_bytes=252 * 1024**3)}),
    (
        wire.PreparedReply,
        {"value": PreparedVersion("v1", {"digest": "sha256:1", "labels": {"a": "b"}}, "fdaa::2", "172.30.0.2")},
    ),
    (wire.ExitReply, {"value": EXIT}),
    (wire.ExitReply, {"value": None}),
    (
        wire.MachinesReply,
        {"value": [HostMachine("m1", HostState.RUNNING, "v1", "start"), HostMachine("m2", HostState.ABSENT)]},
    ),
    (wire.ExecReply, {"value": ExecResult(1, b"\x80out", b"err\xfe", exit_signal=0, truncated=True)}),
    (wire.ProcessesReply, {"value": [ProcessInfo(1, "sleep 1", 2, 4096, 3, 4, "/", (("0.0.0.0:80", "tcp"),))]}),
    (wire.OutputReply, {"value": OutputChunk(b"line\n\xff", OutputCursor("64769:1234", 99), skipped=10)}),
    (
        wire.EventsReply,
        {"value": [HostEvent(3, HostEventKind.EXIT, "m1", "v1", HostState.STOPPED, EXIT, "2026-12-03T06:00:00Z")]},
    ),
    (wire.SnapshotReply, {"value": SnapshotInfo(4096, "sha256:ab")}),
    (wire.UsageReply, {"value": VolumeUsage(4096, 100, 50, 40)}),
    (wire.StoredReply, {"value": wire.StoredVolumes(volumes=["vol_1"], snapshots=[])}),
    (wire.BoolReply, {"value": True}),
    (wire.IntReply, {"value": 12}),
]


@pytest.mark.parametrize(
    ("model", "fields"), ROUND_TRIPS, ids=[f"{model.__name__}-{i}" for i, (model, _) in enumerate(ROUND_TRIPS)]
)
def test_every_type_comes_back_equal(model: type[wire.WireModel], fields: dict[str, object]) -> None:
    sent = model(**fields)
    body = wire.encode(sent)
    orjson.loads(body)  # plain JSON, bytes included
    assert wire.decode(model, body) == sent


def test_bytes_travel_as_base64_text() -> None:
    body = orjson.loads(wire.encode(wire.ExecReply(value=ExecResult(0, b"\xff\xfe", b""))))
    assert body["value"]["stdout"] == "__4="  # URL-safe base64 of ff fe


def test_a_bad_body_is_an_invalid_argument_naming_the_field() -> None:
    with pytest.raises(InvalidArgumentError, match="timeout"):
        wire.decode(wire.ExecRequest, b'{"command": ["x"], "timeout": "soon", "deadline": {"at": 1}}')
    with pytest.raises(InvalidArgumentError, match="extra: Extra inputs"):
        wire.decode(wire.KeyedRequest, b'{"key": "k", "deadline": {"at": 1}, "extra": 1}')
    with pytest.raises(InvalidArgumentError):
        wire.decode(wire.KeyedRequest, b"not json")
    with pytest.raises(InvalidArgumentError, match="key"):
        wire.decode(wire.KeyedRequest, b'{"key": "", "deadline": {"at": 1}}')


def sample(kind: type[AerodromeError]) -> AerodromeError:
    if kind is RateLimitedError:
        return RateLimitedError("slow down", retry_after=2.5)
    if kind is InsufficientStorageError:
        return InsufficientStorageError("volume create")
    return kind(f"a {kind.__name__}")


@pytest.mark.parametrize(
    "kind", [wire.ERROR_KINDS[name] for name in sorted(wire.ERROR_KINDS)], ids=sorted(wire.ERROR_KINDS)
)
def test_every_error_kind_comes_back_as_itself(kind: type[AerodromeError]) -> None:
    sent = sample(kind)
    body = wire.error_body(sent)
    assert orjson.loads(body)["error"]["kind"] == kind.__name__
    received = wire.error_from_body(wire.error_status(sent), body)
    assert type(received) is kind
    assert (received.message, received.status) == (sent.message, sent.status)
    if isinstance(sent, RateLimitedError):
        assert isinstance(received, RateLimitedError) and received.retry_after == 2.5


def test_the_kinds_include_the_whole_tree() -> None:
    assert {"CapacityError", "AlreadyExistsError", "InsufficientStorageError", "RuntimeFailureError"} <= set(
        wire.ERROR_KINDS
    )
    assert wire.error_status(CapacityError("full")) == 503
    assert orjson.loads(wire.error_body(CapacityError("full")))["error"]["status"] == "insufficient_capacity"


def test_an_error_the_client_does_not_know_is_a_runtime_failure() -> None:
    unknown = wire.error_from_body(500, b'{"error": {"kind": "MeteorError", "message": "the sky fell"}}')
    assert type(unknown) is RuntimeFailureError and "MeteorError: the sky fell" in unknown.message
    for garbage in (b"<html>", b'{"error": "flat"}', b'{"error": {"kind": 1, "message": "x"}}', b"[]"):
        assert type(wire.error_from_body(502, garbage)) is RuntimeFailureError


def test_another_protocol_version_is_refused() -> None:
    wire.check_protocol("1", "agent")
    for spoken in ("2", "0", "", None):
        with pytest.raises(FailedPreconditionError, match="aerodrome-agent-protocol"):
            wire.check_protocol(spoken, "agent")


def test_a_deadline_crosses_as_wall_clock_time() -> None:
    deadline = Deadline.after(30)
    body = wire.encode(wire.KeyedRequest(key="k", deadline=deadline))
    received = wire.decode(wire.KeyedRequest, body).deadline
    assert received == deadline and 0 < received.remaining() <= 30 and received.at > time.time()
