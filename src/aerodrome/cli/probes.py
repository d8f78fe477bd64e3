"""The API calls `aerodrome doctor` makes, each checked and counted, and the checks it makes on a machine after a
kill: settled, its version the one the host runs, each exit reported once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

SETTLED = ("created", "started", "stopped", "suspended", "failed", "destroyed")
AT_REST = ("started", "stopped", "suspended", "created", "failed")


class ProbeError(Exception):
    """An answer other than the one the operation must give."""


@dataclass
class Api:
    """One app's calls, through a client of the running daemon."""

    client: httpx.Client
    app: str
    requests: int = 0
    operations: int = 0  # the requests that change something
    server_errors: list[str] = field(default_factory=list)

    def call(self, method: str, path: str, expect: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        self.requests += 1
        self.operations += method != "GET"
        response = self.client.request(method, path, **kwargs)
        if response.status_code >= 500 and response.status_code != 503:
            self.server_errors.append(f"{method} {path}: {response.status_code} {response.text[:200]}")
        if response.status_code not in expect:
            raise ProbeError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response.json() if response.content else None

    @property
    def base(self) -> str:
        return f"/v1/apps/{self.app}"

    def create_app(self) -> None:
        self.call("POST", "/v1/apps", (201,), json={"app_name": self.app, "org_slug": "personal"})

    def create_volume(self) -> str:
        body = {"name": "data", "size_gb": 1, "region": "iad"}
        volume: dict[str, Any] = self.call("POST", f"{self.base}/volumes", json=body)
        return str(volume["id"])

    def create_machine(self, image: str, *, volume: str | None = None, launch: bool = True, **env: str) -> str:
        config: dict[str, Any] = {"image": image, "env": env, "restart": {"policy": "no"}}
        if volume:
            config["mounts"] = [{"volume": volume, "path": "/data"}]
        body = {"config": config, "region": "iad", "skip_launch": not launch}
        machine: dict[str, Any] = self.call("POST", f"{self.base}/machines", json=body)
        return str(machine["id"])

    def machine(self, mid: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.call("GET", f"{self.base}/machines/{mid}", (200, 404))
        return None if found is None or "error" in found else found

    def machines(self) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = self.call("GET", f"{self.base}/machines")
        return listed

    def volumes(self) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = self.call("GET", f"{self.base}/volumes")
        return listed

    def volume(self, vid: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.call("GET", f"{self.base}/volumes/{vid}", (200, 404))
        return None if found is None or "error" in found else found

    def wait(self, mid: str, state: str, timeout: int = 60) -> dict[str, Any]:
        params = {"state": state, "timeout": timeout}
        answer: dict[str, Any] = self.call("GET", f"{self.base}/machines/{mid}/wait", params=params)
        return answer

    def settle(self, mid: str) -> dict[str, Any]:
        """Wait until the machine is in a settled state; ProbeError when it stays in a transient one."""
        self.wait(mid, "settled")
        machine = self.machine(mid)
        if machine is None:
            return {"id": mid, "state": "destroyed"}
        if machine["state"] not in SETTLED:
            raise ProbeError(f"machine {mid} is stuck in {machine['state']}")
        return machine

    def start(self, mid: str) -> None:
        self.call("POST", f"{self.base}/machines/{mid}/start")
        self.wait(mid, "started")

    def shell(self, mid: str, script: str) -> str:
        body = {"command": ["sh", "-c", script], "timeout": 10}
        result: dict[str, Any] = self.call("POST", f"{self.base}/machines/{mid}/exec", json=body)
        if result.get("exit_code") != 0:
            raise ProbeError(f"exec in {mid}: {result}")
        return str(result.get("stdout", ""))

    def events(self, mid: str) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = self.call("GET", f"{self.base}/machines/{mid}/events")
        return listed


def check_machine(api: Api, mid: str) -> list[str]:
    """A machine after a kill and a restart: settled, running the version the database names, exits once."""
    try:
        machine = api.settle(mid)
        if machine["state"] == "destroyed":
            return []
        problems = _exits_reported_once(api.events(mid), mid)
        if machine["state"] in ("failed", "created", "stopped", "suspended"):
            api.start(mid)
            machine = api.machine(mid) or machine
        env = machine["config"].get("env") or {}
        seen = api.shell(mid, 'echo "$FLY_MACHINE_VERSION $MARK"').split()
        wanted = [machine["instance_id"], *([env["MARK"]] if env.get("MARK") else [])]
        if seen != wanted:
            problems.append(f"machine {mid}: the database has version {wanted}, the host runs {seen}")
        return problems
    except ProbeError as exc:
        return [str(exc)]


def _exits_reported_once(events: list[dict[str, Any]], mid: str) -> list[str]:
    """Between two starts, a run ends at most once (an `exit`, or a `stop` that reached `stopped`)."""
    ended = False
    problems = []
    for event in sorted(events, key=lambda e: (e.get("timestamp", 0), e.get("id", ""))):
        if event["status"] in ("started", "starting"):
            ended = False
        elif event["type"] == "exit" or (event["type"] == "stop" and event["status"] == "stopped"):
            if ended:
                problems.append(f"machine {mid}: an exit was reported twice ({event['type']} {event['status']})")
            ended = True
    return problems
