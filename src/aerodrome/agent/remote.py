"""`RemoteAgent`: the `HostAgent` of another process, reached over HTTP (`aerodrome agent`).

One keep-alive pool per agent. A call that could not connect is sent again, the same body with the same
idempotency key, while it has attempts and deadline left; only calls with a key are, since only they are safe
to repeat by contract. A keyed call whose connection broke after the request went out (the agent died under it)
is sent again, the same key and body, once the agent answers again, for up to `resend_for` seconds within its
deadline: a restarted agent resumes the operation and answers the key with its real result. Past that window its
outcome is unknown (`UnavailableError`), and the caller may send it again with the same key. An agent that
cannot be reached is `UnavailableError` (`HostUnreachableError`).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from aerodrome.agent import wire
from aerodrome.core import (
    AerodromeError,
    Deadline,
    ExecResult,
    ExitInfo,
    HostEvent,
    HostInfo,
    HostMachine,
    HostUnreachableError,
    MachineUsage,
    MachineVersionSpec,
    OutputChunk,
    OutputCursor,
    PreparedVersion,
    ProcessInfo,
    PullGrant,
    RuntimeFailureError,
    SnapshotInfo,
    UnavailableError,
    VolumeUsage,
    WaitTimeoutError,
)

R = TypeVar("R", bound=BaseModel)
GRACE = 1.0  # how much longer than a call's deadline the client waits for the agent's own answer to it
RESEND_FOR = 10.0  # seconds a keyed call cut off mid-call is sent again while the agent comes back
RESEND_PAUSE = 0.05, 0.5  # the first and the longest pause between those sends


class RemoteAgent:
    """A `HostAgent` over the network: `url` is the agent's (http://HOST:PORT with `token`, its DIR/agent.token;
    or https://HOST:PORT with `tls`, the control plane's mutual TLS context). Over TLS the agent's certificate
    must name `server_name` (the host's name), or the URL's host when None."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        tls: ssl.SSLContext | None = None,
        server_name: str | None = None,
        timeout: float = 10.0,
        connect_attempts: int = 3,
        resend_for: float = RESEND_FOR,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.connect_attempts = max(1, connect_attempts)
        self.resend_for = resend_for
        headers = {wire.PROTOCOL_HEADER: wire.PROTOCOL}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        self._extensions = {"sni_hostname": server_name} if tls is not None and server_name else None
        self._client = httpx.AsyncClient(
            base_url=self.url,
            headers=headers,
            verify=tls if tls is not None else True,
            timeout=timeout,
            # the agent keeps an idle connection 30 s: letting it go sooner never reuses one being closed
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32, keepalive_expiry=15.0),
            transport=transport,
        )

    async def _send(
        self,
        method: str,
        path: str,
        reply: type[R],
        *,
        body: BaseModel | None = None,
        params: dict[str, Any] | None = None,
        deadline: Deadline | None = None,
        keyed: bool = False,
        wait: float = 0.0,
    ) -> R:
        content = wire.encode(body) if body is not None else None
        headers = {"content-type": "application/json"} if content is not None else None
        attempts = self.connect_attempts if keyed else 1
        for attempt in range(attempts):
            seconds = deadline.remaining() + GRACE if deadline is not None else self.timeout + wait
            try:
                response = await self._request(method, path, content, params, headers, seconds)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                out_of_time = deadline is not None and deadline.remaining() <= 0
                if attempt + 1 == attempts or out_of_time:
                    raise HostUnreachableError(
                        f"the agent at {self.url} is unreachable: {exc or type(exc).__name__}"
                    ) from None
                await asyncio.sleep(0.05 * 2**attempt)
                continue
            except httpx.TimeoutException:
                raise WaitTimeoutError(f"the agent at {self.url} did not answer {method} {path} in time") from None
            except httpx.TransportError as exc:
                if keyed and deadline is not None and self.resend_for > 0:
                    return await self._resend(method, path, reply, content, params, headers, deadline, exc)
                raise self._unknown(method, path, exc) from None
            return self._reply(response, reply)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def _request(
        self,
        method: str,
        path: str,
        content: bytes | None,
        params: dict[str, Any] | None,
        headers: dict[str, str] | None,
        seconds: float,
    ) -> httpx.Response:
        try:
            return await self._client.request(
                method,
                path,
                content=content,
                params=params,
                headers=headers,
                timeout=seconds,
                extensions=self._extensions,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            refusal = _tls_refusal(exc)
            if refusal is not None:  # a certificate refused: no retry mends it
                raise HostUnreachableError(f"TLS with the agent at {self.url} failed: {refusal}") from None
            raise

    async def _resend(
        self,
        method: str,
        path: str,
        reply: type[R],
        content: bytes | None,
        params: dict[str, Any] | None,
        headers: dict[str, str] | None,
        deadline: Deadline,
        broken: httpx.TransportError,
    ) -> R:
        """The keyed call again, the same key and body, until the agent answers it (it died under the first)."""
        window = Deadline.after(min(self.resend_for, max(0.0, deadline.remaining())))
        pause, longest = RESEND_PAUSE
        while window.remaining() > 0:
            await asyncio.sleep(min(pause, window.remaining()))
            pause = min(pause * 2, longest)
            try:
                response = await self._request(method, path, content, params, headers, deadline.remaining() + GRACE)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # not back yet
                broken = exc
                continue
            except httpx.TimeoutException:
                raise WaitTimeoutError(f"the agent at {self.url} did not answer {method} {path} in time") from None
            except httpx.TransportError as exc:  # cut off again
                broken = exc
                continue
            return self._reply(response, reply)
        raise self._unknown(method, path, broken)

    def _unknown(self, method: str, path: str, exc: httpx.TransportError) -> UnavailableError:
        return UnavailableError(
            f"the connection to the agent at {self.url} failed during {method} {path} ({exc!r}): "
            "its outcome is unknown; send it again with the same key"
        )

    def _reply(self, response: httpx.Response, reply: type[R]) -> R:
        spoken = response.headers.get(wire.PROTOCOL_HEADER)
        if spoken is None and response.status_code != 200:
            kind = UnavailableError if response.status_code == 503 else RuntimeFailureError
            raise kind(f"{self.url} answered {response.status_code} without the agent's protocol: is it an agent?")
        wire.check_protocol(spoken, f"agent at {self.url}")
        if response.status_code != 200:
            raise wire.error_from_body(response.status_code, response.content)
        try:
            return wire.decode(reply, response.content)
        except AerodromeError as exc:
            raise RuntimeFailureError(f"the agent at {self.url} sent a reply this side cannot read: {exc}") from None

    @staticmethod
    def _machine(machine_id: str, action: str = "") -> str:
        return f"/v1/machines/{quote(machine_id, safe='')}" + (f"/{action}" if action else "")

    @staticmethod
    def _volume(volume_id: str, action: str = "") -> str:
        return f"/v1/volumes/{quote(volume_id, safe='')}" + (f"/{action}" if action else "")

    async def info(self) -> HostInfo:
        return (await self._send("GET", "/v1/info", wire.InfoReply)).value

    async def resolve_image(self, image: str, grant: PullGrant | None, *, deadline: Deadline) -> dict[str, Any]:
        body = wire.ResolveImageRequest(image=image, grant=grant, deadline=deadline)
        return (await self._send("POST", "/v1/images/resolve", wire.ImageRefReply, body=body, deadline=deadline)).value

    async def prepare(self, spec: MachineVersionSpec, *, key: str, deadline: Deadline) -> PreparedVersion:
        body = wire.PrepareRequest(spec=spec, key=key, deadline=deadline)
        path = self._machine(spec.machine_id, "prepare")
        return (await self._send("POST", path, wire.PreparedReply, body=body, deadline=deadline, keyed=True)).value

    async def start(self, machine_id: str, version: str, *, key: str, deadline: Deadline) -> None:
        body = wire.StartRequest(version=version, key=key, deadline=deadline)
        await self._send(
            "POST", self._machine(machine_id, "start"), wire.NoneReply, body=body, deadline=deadline, keyed=True
        )

    async def stop(
        self, machine_id: str, *, signal: int, timeout: float, key: str, deadline: Deadline
    ) -> ExitInfo | None:
        body = wire.StopRequest(signal=signal, timeout=timeout, key=key, deadline=deadline)
        path = self._machine(machine_id, "stop")
        return (await self._send("POST", path, wire.ExitReply, body=body, deadline=deadline, keyed=True)).value

    async def suspend(self, machine_id: str, *, key: str, deadline: Deadline) -> None:
        body = wire.KeyedRequest(key=key, deadline=deadline)
        path = self._machine(machine_id, "suspend")
        await self._send("POST", path, wire.NoneReply, body=body, deadline=deadline, keyed=True)

    async def signal(self, machine_id: str, signal: int, *, deadline: Deadline) -> None:
        body = wire.SignalRequest(signal=signal, deadline=deadline)
        await self._send("POST", self._machine(machine_id, "signal"), wire.NoneReply, body=body, deadline=deadline)

    async def destroy(self, machine_id: str, *, key: str, deadline: Deadline) -> None:
        body = wire.KeyedRequest(key=key, deadline=deadline)
        path = self._machine(machine_id, "destroy")
        await self._send("POST", path, wire.NoneReply, body=body, deadline=deadline, keyed=True)

    async def status(self, machine_id: str) -> HostMachine:
        return (await self._send("GET", self._machine(machine_id), wire.MachineReply)).value

    async def machines(self) -> list[HostMachine]:
        return (await self._send("GET", "/v1/machines", wire.MachinesReply)).value

    async def exec(
        self,
        machine_id: str,
        command: list[str],
        stdin: bytes | None,
        timeout: float,
        *,
        deadline: Deadline,
        container: str = "",
    ) -> ExecResult:
        body = wire.ExecRequest(command=command, stdin=stdin, timeout=timeout, deadline=deadline, container=container)
        path = self._machine(machine_id, "exec")
        return (await self._send("POST", path, wire.ExecReply, body=body, deadline=deadline)).value

    async def ps(self, machine_id: str) -> list[ProcessInfo]:
        return (await self._send("GET", self._machine(machine_id, "ps"), wire.ProcessesReply)).value

    async def set_memory(self, machine_id: str, memory_mb: int, *, deadline: Deadline) -> None:
        body = wire.MemoryRequest(memory_mb=memory_mb, deadline=deadline)
        await self._send("POST", self._machine(machine_id, "memory"), wire.NoneReply, body=body, deadline=deadline)

    async def reclaim_memory(self, machine_id: str, amount_mb: int, *, deadline: Deadline) -> int:
        body = wire.ReclaimRequest(amount_mb=amount_mb, deadline=deadline)
        path = self._machine(machine_id, "reclaim")
        return (await self._send("POST", path, wire.IntReply, body=body, deadline=deadline)).value

    async def memory_usage(self, machine_id: str) -> int:
        return (await self._send("GET", self._machine(machine_id, "memory"), wire.IntReply)).value

    async def machine_usage(self, machine_id: str) -> MachineUsage | None:
        return (await self._send("GET", self._machine(machine_id, "usage"), wire.MachineUsageReply)).value

    async def read_output(self, machine_id: str, cursor: OutputCursor, limit: int) -> OutputChunk:
        params = {"file": cursor.file, "offset": cursor.offset, "limit": limit}
        return (await self._send("GET", self._machine(machine_id, "output"), wire.OutputReply, params=params)).value

    async def events(self, after: int, *, limit: int = 500, wait: float = 0.0) -> list[HostEvent]:
        params = {"after": after, "limit": limit, "wait": wait}
        return (await self._send("GET", "/v1/events", wire.EventsReply, params=params, wait=wait)).value

    async def acknowledge(self, cursor: int) -> None:
        body = wire.AcknowledgeRequest(cursor=cursor)
        await self._send("POST", "/v1/events/acknowledge", wire.NoneReply, body=body)

    async def create_volume(
        self,
        volume_id: str,
        size_bytes: int,
        fstype: str,
        *,
        from_snapshot: str | None = None,
        from_volume: str | None = None,
        key: str,
        deadline: Deadline,
    ) -> None:
        body = wire.CreateVolumeRequest(
            size_bytes=size_bytes,
            fstype=fstype,
            from_snapshot=from_snapshot,
            from_volume=from_volume,
            key=key,
            deadline=deadline,
        )
        await self._send("POST", self._volume(volume_id), wire.NoneReply, body=body, deadline=deadline, keyed=True)

    async def extend_volume(self, volume_id: str, size_bytes: int, *, key: str, deadline: Deadline) -> bool:
        body = wire.ExtendVolumeRequest(size_bytes=size_bytes, key=key, deadline=deadline)
        path = self._volume(volume_id, "extend")
        return (await self._send("POST", path, wire.BoolReply, body=body, deadline=deadline, keyed=True)).value

    async def snapshot_volume(self, volume_id: str, snapshot_id: str, *, key: str, deadline: Deadline) -> SnapshotInfo:
        body = wire.SnapshotVolumeRequest(snapshot_id=snapshot_id, key=key, deadline=deadline)
        path = self._volume(volume_id, "snapshot")
        return (await self._send("POST", path, wire.SnapshotReply, body=body, deadline=deadline, keyed=True)).value

    async def delete_volume(self, volume_id: str, *, key: str, deadline: Deadline) -> None:
        body = wire.KeyedRequest(key=key, deadline=deadline)
        path = self._volume(volume_id, "delete")
        await self._send("POST", path, wire.NoneReply, body=body, deadline=deadline, keyed=True)

    async def delete_snapshot(self, snapshot_id: str, *, key: str, deadline: Deadline) -> None:
        body = wire.KeyedRequest(key=key, deadline=deadline)
        path = f"/v1/snapshots/{quote(snapshot_id, safe='')}/delete"
        await self._send("POST", path, wire.NoneReply, body=body, deadline=deadline, keyed=True)

    async def volume_usage(self, volume_id: str) -> VolumeUsage:
        return (await self._send("GET", self._volume(volume_id, "usage"), wire.UsageReply)).value

    async def stored_volumes(self) -> tuple[list[str], list[str]]:
        stored = (await self._send("GET", "/v1/volumes", wire.StoredReply)).value
        return stored.volumes, stored.snapshots

    async def close(self) -> None:
        await self._client.aclose()


def _tls_refusal(exc: Exception) -> str | None:
    """What TLS refused in a failed connect (a certificate, either side's), or None when it was not TLS."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            return (
                "the agent ended the handshake: it takes no certificate this side offers (none, or not its CA's client)"
            )
        if isinstance(cause, ssl.SSLError):
            return f"{cause.reason or type(cause).__name__}: {cause}"
        cause = cause.__cause__ or cause.__context__
    return None
