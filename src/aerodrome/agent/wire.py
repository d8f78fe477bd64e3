"""The wire format of `aerodrome agent`: each request and reply body, and how error kinds travel.

The core's dataclasses cross as they are, through pydantic models that hold them (one definition of each
field: the core's). Bytes travel as URL-safe base64. Every reply is `{"value": ...}`; every failure is
`{"error": {"kind": "NotFoundError", "message": "...", "status": ..., "retry_after": ...}}` and is raised again
on the client as the same class, a kind it does not know as `RuntimeFailureError`. Each request and reply
carries `aerodrome-agent-protocol: 1`: a peer speaking another version is refused before anything is read.
"""

from __future__ import annotations

import math
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aerodrome.core import (
    AGENT_PROTOCOL_VERSION,
    AerodromeError,
    Deadline,
    ExecResult,
    ExitInfo,
    FailedPreconditionError,
    HostEvent,
    HostInfo,
    HostMachine,
    InvalidArgumentError,
    MachineUsage,
    MachineVersionSpec,
    OutputChunk,
    PreparedVersion,
    ProcessInfo,
    PullGrant,
    RateLimitedError,
    RuntimeFailureError,
    SnapshotInfo,
    VolumeUsage,
)

PROTOCOL_HEADER = "aerodrome-agent-protocol"
PROTOCOL = str(AGENT_PROTOCOL_VERSION)
MAX_KEY = 200  # an idempotency key: a ULID or a short composite of ids

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class WireModel(BaseModel):
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64", extra="forbid", frozen=True)


class Timed(WireModel):
    deadline: Deadline


class Keyed(Timed):
    key: str = Field(min_length=1, max_length=MAX_KEY)


class ResolveImageRequest(Timed):
    image: str = Field(min_length=1)
    grant: PullGrant | None = None


class PrepareRequest(Keyed):
    spec: MachineVersionSpec


class StartRequest(Keyed):
    version: str = Field(min_length=1)


class StopRequest(Keyed):
    signal: int = Field(ge=1, le=64)
    timeout: float = Field(ge=0)


class KeyedRequest(Keyed):
    """suspend, destroy, and the deletion of a volume or a snapshot: nothing but the key and the deadline."""


class SignalRequest(Timed):
    signal: int = Field(ge=1, le=64)


class ExecRequest(Timed):
    command: list[str] = Field(min_length=1)
    stdin: bytes | None = None
    timeout: float = Field(gt=0)
    container: str = ""  # of a multi-container machine; "" its first


class MemoryRequest(Timed):
    memory_mb: int = Field(ge=1)


class ReclaimRequest(Timed):
    amount_mb: int = Field(ge=0)


class AcknowledgeRequest(WireModel):
    cursor: int = Field(ge=0)


class CreateVolumeRequest(Keyed):
    size_bytes: int = Field(ge=1)
    fstype: str
    from_snapshot: str | None = None
    from_volume: str | None = None


class ExtendVolumeRequest(Keyed):
    size_bytes: int = Field(ge=1)


class SnapshotVolumeRequest(Keyed):
    snapshot_id: str = Field(min_length=1)


class Reply(WireModel, Generic[T]):
    value: T


class StoredVolumes(WireModel):
    volumes: list[str]
    snapshots: list[str]


# What each method's reply holds; the client and the server name the same one.
InfoReply = Reply[HostInfo]
PreparedReply = Reply[PreparedVersion]
ImageRefReply = Reply[dict[str, Any]]
NoneReply = Reply[None]
ExitReply = Reply[ExitInfo | None]
MachineReply = Reply[HostMachine]
MachinesReply = Reply[list[HostMachine]]
MachineUsageReply = Reply[MachineUsage | None]
ExecReply = Reply[ExecResult]
ProcessesReply = Reply[list[ProcessInfo]]
IntReply = Reply[int]
BoolReply = Reply[bool]
OutputReply = Reply[OutputChunk]
EventsReply = Reply[list[HostEvent]]
SnapshotReply = Reply[SnapshotInfo]
UsageReply = Reply[VolumeUsage]
StoredReply = Reply[StoredVolumes]


def encode(model: BaseModel) -> bytes:
    return model.__pydantic_serializer__.to_json(model)


def decode(model: type[M], body: bytes) -> M:
    """The body as `model`; InvalidArgumentError (never a bare ValidationError) naming what is wrong."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidArgumentError(f"bad request body: {_first_problem(exc)}") from None


def _first_problem(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    if not errors:
        return "not valid"
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


def _kinds() -> dict[str, type[AerodromeError]]:
    """Every error class of aerodrome.core.errors, by name."""
    found: dict[str, type[AerodromeError]] = {}
    pending: list[type[AerodromeError]] = [AerodromeError]
    while pending:
        cls = pending.pop()
        if cls.__module__ == AerodromeError.__module__:
            found[cls.__name__] = cls
        pending.extend(cls.__subclasses__())
    return found


ERROR_KINDS = _kinds()

# The HTTP status each kind is answered with (the API's table, for an operator reading the agent's log);
# the client goes by the kind, never by the status.
HTTP_STATUS = {
    "InvalidArgumentError": 400,
    "UnauthenticatedError": 401,
    "NotFoundError": 404,
    "WaitTimeoutError": 408,
    "LeaseConflictError": 409,
    "FailedPreconditionError": 412,
    "UnprocessableError": 422,
    "AlreadyExistsError": 422,
    "RateLimitedError": 429,
    "UnavailableError": 503,
    "CapacityError": 503,
    "InsufficientStorageError": 507,
}


def error_status(error: AerodromeError) -> int:
    for cls in type(error).__mro__:
        status = HTTP_STATUS.get(cls.__name__)
        if status is not None and ERROR_KINDS.get(cls.__name__) is cls:
            return status
    return 500


def error_fields(error: AerodromeError) -> dict[str, Any]:
    kind = next(cls.__name__ for cls in type(error).__mro__ if ERROR_KINDS.get(cls.__name__) is cls)
    fields: dict[str, Any] = {"kind": kind, "message": error.message}
    if error.status is not None:
        fields["status"] = error.status
    if isinstance(error, RateLimitedError):
        fields["retry_after"] = error.retry_after
    return fields


def error_body(error: AerodromeError) -> bytes:
    return orjson.dumps({"error": error_fields(error)})


def error_from_body(status: int, body: bytes) -> AerodromeError:
    """The error a reply body names, as its own class; anything unreadable as RuntimeFailureError."""
    try:
        fields = orjson.loads(body)["error"]
        kind, message = fields["kind"], fields["message"]
        if not isinstance(kind, str) or not isinstance(message, str):
            raise TypeError(kind, message)
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return RuntimeFailureError(f"the agent answered {status} with no error of its wire format: {body[:200]!r}")
    cls = ERROR_KINDS.get(kind)
    if cls is None:
        return RuntimeFailureError(f"{kind}: {message}")
    return _rebuild(cls, message, fields)


def _rebuild(cls: type[AerodromeError], message: str, fields: dict[str, Any]) -> AerodromeError:
    # Some kinds compose their message in __init__ (InsufficientStorageError) or need more arguments
    # (RateLimitedError): the message travelled whole, so it is set as it is, past their constructors.
    error = cls.__new__(cls)
    status = fields.get("status")
    AerodromeError.__init__(error, message, status=status if isinstance(status, str) else None)
    if isinstance(error, RateLimitedError):
        retry_after = fields.get("retry_after")
        finite = isinstance(retry_after, int | float) and math.isfinite(retry_after)
        error.retry_after = float(retry_after) if finite and retry_after is not None else 1.0
    return error


def check_protocol(value: str | None, peer: str) -> None:
    """Refuse a peer that speaks another version of this protocol (or does not say which)."""
    if value != PROTOCOL:
        said = f"speaks {PROTOCOL_HEADER} {value}" if value else f"sends no {PROTOCOL_HEADER} header"
        raise FailedPreconditionError(f"the {peer} {said}; this side speaks {PROTOCOL}: run the same aerodrome on both")
