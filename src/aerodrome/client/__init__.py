"""A typed Python client of the Machines API, sync (`Client`) and async (`AsyncClient`), for aerodrome and for
Fly itself: the same base URL and token rules as fly-go (`ClientSettings.from_env`), retries on 429 and on
502/503 (`RetryPolicy`), lease and wait helpers, and one error tree (`ApiError`).

    with Client.from_env() as fly:
        machine = fly.create_machine("my-app", CreateMachineRequest(config=MachineConfig(image="nginx")))
        fly.wait("my-app", machine.id, "started")
        with fly.machine_lease("my-app", machine.id) as lease:
            fly.stop_machine("my-app", machine.id, nonce=lease.nonce)
"""

from __future__ import annotations

from aerodrome.client import endpoints, graphql
from aerodrome.client.async_client import AsyncClient
from aerodrome.client.calls import NO_RETRIES, Call, RetryPolicy
from aerodrome.client.errors import (
    ApiError,
    BadRequestError,
    ConnectionFailedError,
    LeaseConflictError,
    NotFoundError,
    PreconditionFailedError,
    RateLimitedError,
    ServerError,
    UnauthorizedError,
    UnprocessableError,
    WaitTimeoutError,
)
from aerodrome.client.logs import LogEntry, LogPage, app_logs
from aerodrome.client.machine_config import (
    Concurrency,
    CreateMachineRequest,
    CreateVolumeRequest,
    File,
    Guest,
    Init,
    MachineConfig,
    Mount,
    Port,
    Restart,
    Service,
    StopConfig,
    UpdateMachineRequest,
)
from aerodrome.client.models import (
    App,
    Certificate,
    CheckStatus,
    CreatedOrganization,
    CreatedToken,
    CurrentToken,
    ExecResult,
    ExtendResult,
    Health,
    IPAddress,
    Lease,
    Machine,
    MachineContainer,
    MachineEvent,
    Organization,
    Secret,
    SecretsUpdate,
    Snapshot,
    StartResult,
    Token,
    Volume,
    WaitResult,
)
from aerodrome.client.settings import ClientSettings, authorization_header
from aerodrome.client.sync_client import Client

__all__ = [
    "NO_RETRIES",
    "ApiError",
    "App",
    "AsyncClient",
    "BadRequestError",
    "Call",
    "Certificate",
    "CheckStatus",
    "Client",
    "ClientSettings",
    "Concurrency",
    "ConnectionFailedError",
    "CreateMachineRequest",
    "CreateVolumeRequest",
    "CreatedOrganization",
    "CreatedToken",
    "CurrentToken",
    "ExecResult",
    "ExtendResult",
    "File",
    "Guest",
    "Health",
    "IPAddress",
    "Init",
    "Lease",
    "LeaseConflictError",
    "LogEntry",
    "LogPage",
    "Machine",
    "MachineConfig",
    "MachineContainer",
    "MachineEvent",
    "Mount",
    "NotFoundError",
    "Organization",
    "Port",
    "PreconditionFailedError",
    "RateLimitedError",
    "Restart",
    "RetryPolicy",
    "Secret",
    "SecretsUpdate",
    "ServerError",
    "Service",
    "Snapshot",
    "StartResult",
    "StopConfig",
    "Token",
    "UnauthorizedError",
    "UnprocessableError",
    "UpdateMachineRequest",
    "Volume",
    "WaitResult",
    "WaitTimeoutError",
    "app_logs",
    "authorization_header",
    "endpoints",
    "graphql",
]
