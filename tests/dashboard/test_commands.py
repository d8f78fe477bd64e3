"""The create-machine form as a Machines API body, and as curl and `aerodrome machine run` (no server)."""

from __future__ import annotations

import json
import shlex

import pytest

from aerodrome.core import InvalidArgumentError
from aerodrome.dashboard import MachineForm

FILLED = {
    "image": "127.0.0.1:5000/library/busybox:latest",
    "name": "web",
    "cpus": "2",
    "memory_mb": "512",
    "env": "A=1\nB=two words\n\n",
    "port": "80:8080/tcp:http",
    "autostart": "on",
    "autostop": "suspend",
    "volume": "data:/data",
}


def test_the_body_is_the_apis() -> None:
    body = MachineForm.of(FILLED).body()
    assert body == {
        "name": "web",
        "config": {
            "image": FILLED["image"],
            "guest": {"cpus": 2, "memory_mb": 512},
            "env": {"A": "1", "B": "two words"},
            "services": [
                {
                    "protocol": "tcp",
                    "internal_port": 8080,
                    "ports": [{"port": 80, "handlers": ["http"]}],
                    "autostart": True,
                    "autostop": "suspend",
                }
            ],
            "mounts": [{"volume": "data", "path": "/data"}],
        },
    }


def test_curl_and_the_cli_say_the_same() -> None:
    form = MachineForm.of(FILLED)
    curl = shlex.split(form.curl("http://127.0.0.1:4280", "demo"))
    assert curl[:3] == ["curl", "-X", "POST"] and curl[3] == "http://127.0.0.1:4280/v1/apps/demo/machines"
    assert json.loads(curl[curl.index("-d") + 1]) == form.body()
    assert shlex.split(form.cli("demo")) == [
        *("aerodrome", "machine", "run", FILLED["image"], "--app", "demo", "--name", "web"),
        *("--vm-cpus", "2", "--vm-memory", "512", "--env", "A=1", "--env", "B=two words"),
        *("--port", "80:8080/tcp:http", "--autostop", "suspend", "--autostart", "--volume", "data:/data"),
    ]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("image", "", "image is required"),
        ("cpus", "two", "invalid cpus 'two': a whole number"),
        ("env", "NOEQUALS", "invalid env line 'NOEQUALS': use NAME=VALUE"),
        ("volume", "data", "invalid volume 'data': use VOLUME:/path"),
        ("autostop", "later", "invalid autostop 'later': one of off, stop, suspend"),
        ("port", "http", "invalid port 'http': a whole number"),
    ],
)
def test_bad_values_are_refused_with_a_message(field: str, value: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        MachineForm.of({**FILLED, field: value}).body()
    assert raised.value.message == message
