"""Every request the clients make, written once: each function returns the `Call` for one API operation.

Paths and bodies are Fly's (`machines-openapi.json`); `graphql.py` holds the GraphQL ones (IP addresses, the
caller's organisation).
"""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, TypeAdapter

from aerodrome.client.calls import Call
from aerodrome.client.machine_config import CreateMachineRequest, CreateVolumeRequest, UpdateMachineRequest
from aerodrome.client.models import (
    App,
    Certificate,
    CreatedToken,
    CurrentToken,
    ExecResult,
    ExtendResult,
    Health,
    Lease,
    Machine,
    MachineEvent,
    Secret,
    SecretsUpdate,
    Snapshot,
    StartResult,
    Token,
    Volume,
    WaitResult,
)

M = TypeVar("M", bound=BaseModel)


def one(model: type[M], key: str | None = None) -> Any:
    """A parser of one `model` (under `key`, when the reply wraps it)."""
    return lambda body: model.model_validate((body or {})[key] if key else body or {})


def many(model: type[M], key: str | None = None) -> Any:
    adapter = TypeAdapter(list[model])  # type: ignore[valid-type]
    return lambda body: adapter.validate_python((body or {}).get(key) or [] if key else body or [])


def _ok(body: Any) -> None:
    return None


def _segment(value: str) -> str:
    return quote(value, safe="")


def _app(app: str) -> str:
    return f"/v1/apps/{_segment(app)}"


def _machine(app: str, machine_id: str) -> str:
    return f"{_app(app)}/machines/{_segment(machine_id)}"


def _volume(app: str, volume_id: str) -> str:
    return f"{_app(app)}/volumes/{_segment(volume_id)}"


def health() -> Call[Health]:
    """aerodrome's `/health` (no token needed); a 503 naming what is down is raised at once, not retried."""
    return Call("GET", "/health", one(Health), idempotent=False)


# Apps


def create_app(name: str, org_slug: str, network: str = "") -> Call[App]:
    body = {"app_name": name, "org_slug": org_slug, **({"network": network} if network else {})}
    return Call("POST", "/v1/apps", one(App), body=body)


def list_apps(org_slug: str) -> Call[list[App]]:
    return Call("GET", "/v1/apps", many(App, "apps"), params={"org_slug": org_slug})


def get_app(name: str) -> Call[App]:
    return Call("GET", _app(name), one(App))


def delete_app(name: str) -> Call[None]:
    return Call("DELETE", _app(name), _ok)


# Machines


def create_machine(app: str, request: CreateMachineRequest) -> Call[Machine]:
    return Call("POST", f"{_app(app)}/machines", one(Machine), body=request.to_json())


def list_machines(
    app: str, *, states: list[str] | None = None, region: str = "", include_deleted: bool = False
) -> Call[list[Machine]]:
    params: dict[str, Any] = {"include_deleted": include_deleted}
    if states:
        params["state"] = ",".join(states)
    if region:
        params["region"] = region
    return Call("GET", f"{_app(app)}/machines", many(Machine), params=params)


def get_machine(app: str, machine_id: str) -> Call[Machine]:
    return Call("GET", _machine(app, machine_id), one(Machine))


def update_machine(app: str, machine_id: str, request: UpdateMachineRequest, nonce: str | None = None) -> Call[Machine]:
    return Call("POST", _machine(app, machine_id), one(Machine), body=request.to_json(), nonce=nonce)


def destroy_machine(app: str, machine_id: str, *, force: bool = False, nonce: str | None = None) -> Call[None]:
    return Call("DELETE", _machine(app, machine_id), _ok, params={"force": force}, nonce=nonce)


def start_machine(app: str, machine_id: str, nonce: str | None = None) -> Call[StartResult]:
    # starting a started machine changes nothing: safe to repeat after a 503
    return Call("POST", f"{_machine(app, machine_id)}/start", one(StartResult), nonce=nonce, idempotent=True)


def stop_machine(
    app: str, machine_id: str, *, signal: str = "", timeout: str = "", nonce: str | None = None
) -> Call[None]:
    body = {k: v for k, v in (("signal", signal), ("timeout", timeout)) if v}
    return Call("POST", f"{_machine(app, machine_id)}/stop", _ok, body=body, nonce=nonce, idempotent=True)


def suspend_machine(app: str, machine_id: str, nonce: str | None = None) -> Call[None]:
    return Call("POST", f"{_machine(app, machine_id)}/suspend", _ok, nonce=nonce, idempotent=True)


def restart_machine(
    app: str, machine_id: str, *, signal: str = "", timeout: str = "", nonce: str | None = None
) -> Call[None]:
    params = {k: v for k, v in (("signal", signal), ("timeout", timeout)) if v}
    return Call("POST", f"{_machine(app, machine_id)}/restart", _ok, params=params, nonce=nonce)


def signal_machine(app: str, machine_id: str, signal: str) -> Call[None]:
    return Call("POST", f"{_machine(app, machine_id)}/signal", _ok, body={"signal": signal})


def cordon_machine(app: str, machine_id: str, cordoned: bool = True, nonce: str | None = None) -> Call[None]:
    action = "cordon" if cordoned else "uncordon"
    return Call("POST", f"{_machine(app, machine_id)}/{action}", _ok, nonce=nonce, idempotent=True)


def wait_machine(
    app: str, machine_id: str, state: str = "started", *, timeout: int = 60, version: str = "", from_event_id: str = ""
) -> Call[WaitResult]:
    params: dict[str, Any] = {"state": state, "timeout": max(1, min(60, timeout))}
    if version:
        params["version"] = version
    if from_event_id:
        params["from_event_id"] = from_event_id
    return Call("GET", f"{_machine(app, machine_id)}/wait", one(WaitResult), params=params, timeout=timeout + 15.0)


def machine_events(app: str, machine_id: str, limit: int = 20) -> Call[list[MachineEvent]]:
    return Call("GET", f"{_machine(app, machine_id)}/events", many(MachineEvent), params={"limit": limit})


def exec_machine(
    app: str, machine_id: str, command: list[str], *, stdin: str | None = None, timeout: int = 30, container: str = ""
) -> Call[ExecResult]:
    body: dict[str, Any] = {"command": command, "timeout": timeout, **({"container": container} if container else {})}
    if stdin is not None:
        body["stdin"] = stdin
    return Call("POST", f"{_machine(app, machine_id)}/exec", one(ExecResult), body=body, timeout=timeout + 15.0)


# Leases


def acquire_lease(
    app: str, machine_id: str, *, ttl: int = 30, description: str = "", nonce: str | None = None
) -> Call[Lease]:
    body = {"ttl": ttl, **({"description": description} if description else {})}
    return Call("POST", f"{_machine(app, machine_id)}/lease", one(Lease, "data"), body=body, nonce=nonce)


def get_lease(app: str, machine_id: str) -> Call[Lease]:
    return Call("GET", f"{_machine(app, machine_id)}/lease", one(Lease, "data"))


def release_lease(app: str, machine_id: str, nonce: str) -> Call[None]:
    return Call("DELETE", f"{_machine(app, machine_id)}/lease", _ok, nonce=nonce)


# Volumes


def create_volume(app: str, request: CreateVolumeRequest) -> Call[Volume]:
    return Call("POST", f"{_app(app)}/volumes", one(Volume), body=request.to_json())


def list_volumes(app: str) -> Call[list[Volume]]:
    return Call("GET", f"{_app(app)}/volumes", many(Volume))


def get_volume(app: str, volume_id: str) -> Call[Volume]:
    return Call("GET", _volume(app, volume_id), one(Volume))


def extend_volume(app: str, volume_id: str, size_gb: int) -> Call[ExtendResult]:
    return Call("PUT", f"{_volume(app, volume_id)}/extend", one(ExtendResult), body={"size_gb": size_gb})


def destroy_volume(app: str, volume_id: str) -> Call[Volume]:
    return Call("DELETE", _volume(app, volume_id), one(Volume))


def create_snapshot(app: str, volume_id: str) -> Call[Snapshot]:
    return Call("POST", f"{_volume(app, volume_id)}/snapshots", one(Snapshot), timeout=600.0)


def list_snapshots(app: str, volume_id: str) -> Call[list[Snapshot]]:
    return Call("GET", f"{_volume(app, volume_id)}/snapshots", many(Snapshot))


# Secrets


def list_secrets(app: str, *, show_values: bool = False) -> Call[list[Secret]]:
    return Call("GET", f"{_app(app)}/secrets", many(Secret, "secrets"), params={"show_secrets": show_values})


def set_secrets(app: str, values: dict[str, str | None]) -> Call[SecretsUpdate]:
    """Set (or, with None, remove) several secrets in one new version."""
    return Call("POST", f"{_app(app)}/secrets", one(SecretsUpdate), body={"values": values}, idempotent=True)


def delete_secret(app: str, name: str) -> Call[None]:
    return Call("DELETE", f"{_app(app)}/secrets/{_segment(name)}", _ok)


# Certificates


def add_certificate(app: str, hostname: str) -> Call[Certificate]:
    return Call("POST", f"{_app(app)}/certificates/acme", one(Certificate), body={"hostname": hostname})


def list_certificates(app: str) -> Call[list[Certificate]]:
    return Call("GET", f"{_app(app)}/certificates", many(Certificate, "certificates"), params={"limit": 500})


def get_certificate(app: str, hostname: str) -> Call[Certificate]:
    return Call("GET", f"{_app(app)}/certificates/{_segment(hostname)}", one(Certificate))


def check_certificate(app: str, hostname: str) -> Call[Certificate]:
    path = f"{_app(app)}/certificates/{_segment(hostname)}/check"
    return Call("POST", path, one(Certificate), idempotent=True)


def remove_certificate(app: str, hostname: str) -> Call[None]:
    return Call("DELETE", f"{_app(app)}/certificates/{_segment(hostname)}", _ok)


# Tokens


def current_token() -> Call[CurrentToken]:
    return Call("GET", "/v1/tokens/current", lambda body: CurrentToken.model_validate((body or {})["tokens"][0]))


def list_tokens(org_slug: str = "") -> Call[list[Token]]:
    return Call("GET", "/v1/tokens", many(Token, "tokens"), params={"org_slug": org_slug} if org_slug else None)


def create_token(name: str = "", org_slug: str = "") -> Call[CreatedToken]:
    """Another token of the caller's organisation (aerodrome's `POST /v1/tokens`)."""
    body = {"name": name, **({"org_slug": org_slug} if org_slug else {})}
    return Call("POST", "/v1/tokens", one(CreatedToken), body=body)


def revoke_token(token_id: str) -> Call[Token]:
    return Call("DELETE", f"/v1/tokens/{_segment(token_id)}", one(Token))
