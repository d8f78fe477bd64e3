"""The create-machine form as a Machines API body, and the same request as `curl` and `aerodrome machine run`.

The form is only translated here: the body goes to the same `Machines.create` the REST route calls, which
validates it, so a bad value gets the API's own message.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

from aerodrome.core import InvalidArgumentError

AUTOSTOP = ("off", "stop", "suspend")


@dataclass(frozen=True, slots=True)
class MachineForm:
    image: str = ""
    name: str = ""
    region: str = ""
    cpus: str = ""
    memory_mb: str = ""
    cpu_kind: str = ""
    env: str = ""  # NAME=VALUE, one a line
    port: str = ""  # PORT[:INTERNAL_PORT][/PROTOCOL[:HANDLER…]]
    autostart: bool = False
    autostop: str = "off"
    volume: str = ""  # VOLUME:/path

    @classmethod
    def of(cls, form: dict[str, str]) -> MachineForm:
        text = {k: form.get(k, "").strip() for k in ("image", "name", "region", "cpus", "memory_mb", "cpu_kind")}
        return cls(
            **text,
            env=form.get("env", ""),
            port=form.get("port", "").strip(),
            autostart=form.get("autostart") in ("on", "true", "1"),
            autostop=form.get("autostop", "off") or "off",
            volume=form.get("volume", "").strip(),
        )

    def env_pairs(self) -> list[tuple[str, str]]:
        pairs = []
        for line in self.env.splitlines():
            if not line.strip():
                continue
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise InvalidArgumentError(f"invalid env line {line[:60]!r}: use NAME=VALUE")
            pairs.append((key.strip(), value))
        return pairs

    def body(self) -> dict[str, Any]:
        if not self.image:
            raise InvalidArgumentError("image is required")
        config: dict[str, Any] = {"image": self.image}
        sizes = (("cpus", _int(self.cpus, "cpus")), ("memory_mb", _int(self.memory_mb, "memory")))
        guest: dict[str, Any] = {k: v for k, v in sizes if v is not None}
        if self.cpu_kind:
            guest["cpu_kind"] = self.cpu_kind
        if guest:
            config["guest"] = guest
        if env := self.env_pairs():
            config["env"] = dict(env)
        if self.port:
            config["services"] = [self._service()]
        if self.volume:
            volume, sep, path = self.volume.partition(":")
            if not sep or not volume or not path.startswith("/"):
                raise InvalidArgumentError(f"invalid volume {self.volume!r}: use VOLUME:/path")
            config["mounts"] = [{"volume": volume, "path": path}]
        body: dict[str, Any] = {"config": config}
        if self.name:
            body["name"] = self.name
        if self.region:
            body["region"] = self.region
        return body

    def _service(self) -> dict[str, Any]:
        ports, _, rest = self.port.partition("/")
        public, _, internal = ports.partition(":")
        protocol, *handlers = rest.split(":") if rest else ["tcp"]
        port = _int(public, "port")
        if port is None:
            raise InvalidArgumentError(f"invalid port {self.port!r}: use PORT[:INTERNAL_PORT][/PROTOCOL[:HANDLER]]")
        if self.autostop not in AUTOSTOP:
            raise InvalidArgumentError(f"invalid autostop {self.autostop!r}: one of {', '.join(AUTOSTOP)}")
        entry: dict[str, Any] = {"port": port}
        if handlers:
            entry["handlers"] = [h for h in handlers if h]
        return {
            "protocol": protocol,
            "internal_port": _int(internal, "internal port") or port,
            "ports": [entry],
            "autostart": self.autostart,
            "autostop": {"off": False, "stop": True, "suspend": "suspend"}[self.autostop],
        }

    def curl(self, api_url: str, app_name: str) -> str:
        body = json.dumps(self.body(), indent=2)
        return (
            f"curl -X POST {shlex.quote(f'{api_url}/v1/apps/{app_name}/machines')} \\\n"
            '  -H "Authorization: Bearer $FLY_API_TOKEN" -H "Content-Type: application/json" \\\n'
            f"  -d {shlex.quote(body)}"
        )

    def cli(self, app_name: str) -> str:
        self.body()  # the same checks as the request
        words = ["aerodrome", "machine", "run", self.image, "--app", app_name]
        for flag, value in (
            ("--name", self.name),
            ("--region", self.region),
            ("--vm-cpus", self.cpus),
            ("--vm-memory", self.memory_mb),
            ("--vm-cpu-kind", self.cpu_kind),
        ):
            if value:
                words += [flag, value]
        for key, value in self.env_pairs():
            words += ["--env", f"{key}={value}"]
        if self.port:
            words += ["--port", self.port, "--autostop", self.autostop]
            words.append("--autostart" if self.autostart else "--no-autostart")
        if self.volume:
            words += ["--volume", self.volume]
        return shlex.join(words)


def _int(value: str, what: str) -> int | None:
    if not value:
        return None
    if not value.isdigit() or len(value) > 9:
        raise InvalidArgumentError(f"invalid {what} {value[:20]!r}: a whole number")
    return int(value)
