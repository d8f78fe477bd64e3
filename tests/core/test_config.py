"""MachineConfig: the defaults Fly fills in, what it echoes back, and the typed view aerodrome acts on."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from aerodrome.core import GuestFile, InvalidArgumentError, MountSpec, PortSpec, normalize_config

IMAGE = "registry.local/busybox:latest"


def normalized(**config: Any) -> Any:
    return normalize_config({"image": IMAGE, **config})


def refused(match: str) -> pytest.RaisesContext[InvalidArgumentError]:
    return pytest.raises(InvalidArgumentError, match=match)


def test_defaults_are_filled_in_and_echoed() -> None:
    raw = {"image": IMAGE}
    stored, spec = normalize_config(raw)
    assert stored == {"image": IMAGE, "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256}}
    assert raw == {"image": IMAGE}  # the client's dict is not changed
    assert (spec.restart_policy, spec.restart_max_retries) == ("on-failure", 10)
    assert (spec.stop_signal, spec.stop_timeout) == (2, 10.0)  # SIGINT, 10 s: Fly's defaults
    assert (spec.rootfs_size_gb, spec.auto_destroy, spec.services, spec.mounts) == (8, False, (), ())


def test_a_config_that_is_not_an_object_or_lacks_an_image() -> None:
    with refused("^config is required$"):
        normalize_config(None)
    with refused("image is required"):
        normalize_config({"image": "   "})
    with refused("image is required"):
        normalize_config({})


def test_services_are_typed_and_autostop_echoed_as_fly_go_encodes_it() -> None:
    service = {
        "internal_port": 8080,
        "ports": [{"port": 80, "handlers": ["http"], "force_https": True}, {"start_port": 443}],
        "autostop": "suspend",
        "min_machines_running": 1,
        "concurrency": {"type": "requests", "soft_limit": 5, "hard_limit": 9},
    }
    stored, spec = normalized(services=[service, {"internal_port": 9000, "autostop": True}, {"internal_port": 1}])
    assert [s["autostop"] for s in stored["services"]] == ["suspend", True, False]
    assert all(s["protocol"] == "tcp" for s in stored["services"])
    web = spec.services[0]
    assert web.ports == (PortSpec(80, ("http",), True), PortSpec(443))
    assert (web.autostop, web.min_machines_running, web.autostart) == ("suspend", 1, True)
    assert (web.concurrency_type, web.soft_limit, web.hard_limit) == ("requests", 5, 9)
    assert [s.autostop for s in spec.services] == ["suspend", "stop", "off"]
    assert "services" not in normalized(services=[])[0]


@pytest.mark.parametrize(
    ("service", "message"),
    [
        ("web", r"invalid services\[0\]: must be an object"),
        ({"internal_port": 80, "protocol": "sctp"}, r"services\[0\]\.protocol 'sctp': must be tcp or udp"),
        ({}, r"invalid services\[0\]\.internal_port: None is not an integer"),
        ({"internal_port": 70000}, r"internal_port: 70000 must be between 1 and 65535"),
        ({"internal_port": 80, "autostart": "yes"}, r"services\[0\]\.autostart: must be a boolean"),
        ({"internal_port": 80, "autostop": "sometimes"}, r"autostop 'sometimes': must be off, stop or suspend"),
        ({"internal_port": 80, "concurrency": [1]}, r"concurrency: must be an object"),
        ({"internal_port": 80, "concurrency": {"type": "bytes"}}, r"concurrency\.type 'bytes'"),
        ({"internal_port": 80, "concurrency": {"soft_limit": -1}}, r"concurrency\.soft_limit: -1"),
        ({"internal_port": 80, "ports": ["80"]}, r"each port must be an object"),
        ({"internal_port": 80, "ports": [{"port": 80, "handlers": "http"}]}, r"handlers: must be a list of strings"),
        ({"internal_port": 80, "ports": [{}]}, r"ports\.port: None is not an integer"),
    ],
)
def test_bad_services(service: object, message: str) -> None:
    with refused(message):
        normalized(services=[service])


def test_restart_and_stop_config() -> None:
    _, spec = normalized(restart={"policy": "always", "max_retries": 0}, stop_config={"signal": "SIGTERM"})
    assert (spec.restart_policy, spec.restart_max_retries, spec.stop_signal) == ("always", 0, 15)
    with refused("invalid restart policy 'sometimes': must be one of no, always, on-failure, spot-price"):
        normalized(restart={"policy": "sometimes"})
    with refused(r"invalid restart\.max_retries: -1 must be between 0 and 10000"):
        normalized(restart={"max_retries": -1})
    with refused("invalid signal: 'SIGNOPE'"):
        normalized(stop_config={"signal": "SIGNOPE"})
    with refused("invalid restart: must be an object"):
        normalized(restart="always")


def test_guest_sizes() -> None:
    stored, spec = normalized(guest={"cpu_kind": "performance", "cpus": 2, "memory_mb": 4096})
    assert (spec.cpu_kind, spec.cpus, spec.memory_mb) == ("performance", 2, 4096)
    assert stored["guest"] == {"cpu_kind": "performance", "cpus": 2, "memory_mb": 4096}
    with refused(r"invalid guest\.memory_mb 300: must be a multiple of 256"):
        normalized(guest={"memory_mb": 300})
    with refused(r"invalid guest\.memory_mb: 128 must be between 256"):
        normalized(guest={"memory_mb": 128})
    with refused(r"invalid guest\.cpus: 17 must be between 1 and 16"):
        normalized(guest={"cpus": 17})
    with refused(r"invalid guest\.cpus: True is not an integer"):
        normalized(guest={"cpus": True})
    with refused(r"invalid guest\.cpu_kind 'gpu'"):
        normalized(guest={"cpu_kind": "gpu"})


def test_argv_from_init_or_the_process() -> None:
    _, spec = normalized(init={"exec": ["/bin/sh"], "cmd": ["-c", "true"]}, processes=[{"entrypoint": ["tini"]}])
    assert (spec.init_exec, spec.init_cmd, spec.init_entrypoint) == (("/bin/sh",), ("-c", "true"), ("tini",))
    _, spec = normalized(init={"cmd": []}, processes=[{"cmd": ["httpd"]}])
    assert spec.init_cmd == ("httpd",)  # an empty init.cmd leaves the process's
    with refused(r"invalid init\.cmd: must be a list of strings"):
        normalized(init={"cmd": "httpd -f"})
    with refused("invalid processes: 2 given, a machine runs at most one"):
        normalized(processes=[{}, {}])
    with refused(r"invalid processes\[0\]: must be an object"):
        normalized(processes=["web"])


def test_the_process_env_adds_to_the_machines_and_wins() -> None:
    _, spec = normalized(env={"A": "machine", "B": "b"}, processes=[{"env": {"A": "process"}}])
    assert spec.env == {"A": "process", "B": "b"}
    with refused("invalid env: keys and values must be strings"):
        normalized(env={"A": 1})
    with refused(r"invalid processes\[0\]\.env: keys and values must be strings"):
        normalized(processes=[{"env": {"A": None}}])


def test_files_are_decoded_and_confined() -> None:
    data = base64.b64encode(b"hi\n").decode()
    _, spec = normalized(files=[{"guest_path": "/etc/motd", "raw_value": data, "mode": 0o600}, {"guest_path": "/e"}])
    assert spec.files == (GuestFile("/etc/motd", b"hi\n", 0o600), GuestFile("/e", b""))
    with refused("guest_path 'etc/motd' must be absolute"):
        normalized(files=[{"guest_path": "etc/motd"}])
    with refused("escapes the root filesystem"):
        normalized(files=[{"guest_path": "/etc/../../x"}])
    with refused("raw_value of /x is not base64"):
        normalized(files=[{"guest_path": "/x", "raw_value": "not base64!"}])
    with refused(r"invalid files\.mode: 4096 must be between 0 and 4095"):
        normalized(files=[{"guest_path": "/x", "mode": 0o10000}])
    with refused("each file must be an object"):
        normalized(files=["/x"])


def test_mounts() -> None:
    _, spec = normalized(mounts=[{"volume": "vol_1", "path": "/data"}])
    assert spec.mounts == (MountSpec("vol_1", "/data"),)
    grow = {"name": "vol_1", "path": "/d", "extend_threshold_percent": 80, "add_size_gb": 2, "size_gb_limit": 10}
    assert normalized(mounts=[grow])[1].mounts == (MountSpec("vol_1", "/d", 80, 2, 10),)
    with refused("a machine can mount at most one volume"):
        normalized(mounts=[{"volume": "a", "path": "/a"}, {"volume": "b", "path": "/b"}])
    with refused("invalid mounts: volume is required"):
        normalized(mounts=[{"path": "/data"}])
    with refused("path '/' must be an absolute path other than /"):
        normalized(mounts=[{"volume": "a", "path": "/"}])
    with refused(r"invalid mounts\.extend_threshold_percent: 10 must be between 50 and 99"):
        normalized(mounts=[{**grow, "extend_threshold_percent": 10}])


def test_rootfs() -> None:
    assert normalized(rootfs={"size_gb": 20, "persist": "always"})[1].rootfs_size_gb == 20
    assert normalized(rootfs={"size_gb": 0})[1].rootfs_size_gb == 8
    with refused(r"invalid rootfs\.size_gb: 501 must be between 1 and 500"):
        normalized(rootfs={"size_gb": 501})
    with refused("invalid rootfs.persist 'sometimes'"):
        normalized(rootfs={"persist": "sometimes"})


def test_lists_are_lists_and_bounded() -> None:
    with refused("invalid services: must be a list"):
        normalized(services={"internal_port": 80})
    with refused("invalid files: 2000 entries, at most 1024 allowed"):
        normalized(files=[{"guest_path": "/x"}] * 2000)
