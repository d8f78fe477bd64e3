"""The size of each organisation's subnet is a serve flag, fixed for a data directory once it has organisations."""

from __future__ import annotations

import ipaddress

import pytest

from tests.support.server import running_server


def ipv4_of(machine: dict[str, object]) -> ipaddress.IPv4Address:
    """A machine's private IPv4 address: the host part of its private IPv6 address."""
    return ipaddress.IPv4Address(int(ipaddress.IPv6Address(str(machine["private_ip"]))) & 0xFFFF_FFFF)


def test_org_subnets_keep_their_size_and_a_different_size_is_refused() -> None:
    with running_server("--org-prefix-len", "24") as server:
        image = server.push_image("busybox")
        server.cli("orgs", "create", "second")
        second_token = server.cli("tokens", "create", "--org", "second").strip()
        body = {"config": {"image": image}, "skip_launch": True}
        with server.client() as api:
            api.post("/v1/apps", json={"app_name": "first-app", "org_slug": "personal"}).raise_for_status()
            first = api.post("/v1/apps/first-app/machines", json=body).json()
        with server.client(second_token) as api:
            api.post("/v1/apps", json={"app_name": "second-app", "org_slug": "second"}).raise_for_status()
            second = api.post("/v1/apps/second-app/machines", json=body).json()
        pool = ipaddress.IPv4Network(server.machine_pool)
        assert ipv4_of(first) in ipaddress.IPv4Network((pool.network_address, 24))
        assert ipv4_of(second) in ipaddress.IPv4Network((pool.network_address + 256, 24))

        server.stop()
        logged = server.log_path.stat().st_size
        server.extra_args = ("--org-prefix-len", "20")
        with pytest.raises(RuntimeError, match="exited early"):
            server.start()
        refusal = server.log_path.read_text()[logged:]
        assert "have /24 subnets" in refusal and "Traceback" not in refusal

        server.extra_args = ("--org-prefix-len", "24")
        server.start()
        with server.client(second_token) as api:
            assert api.get(f"/v1/apps/second-app/machines/{second['id']}").json()["private_ip"] == second["private_ip"]
            third = api.post("/v1/apps/second-app/machines", json=body).json()
            assert ipv4_of(third) == ipv4_of(second) + 1
            api.delete("/v1/apps/second-app").raise_for_status()
