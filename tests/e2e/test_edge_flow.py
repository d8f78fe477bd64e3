"""The seed's flow through the edge: a machine with autostop/autostart services wakes on its first request,
stops (or suspends) when idle, and wakes again."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.api.helpers import create_machine, machine_exec, wait_for
from tests.support.server import Server, running_server

READ_TIMEOUT = 3  # seconds the edge waits for a response head (`serve --edge-timeout read=3`)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server("--autostop-idle", "2", "--edge-timeout", f"read={READ_TIMEOUT}") as started:
        started.push_image("busybox")
        yield started


def service(autostop: str | bool) -> dict[str, object]:
    return {
        "protocol": "tcp",
        "internal_port": 8080,
        "autostop": autostop,
        "autostart": True,
        "ports": [{"port": 80, "handlers": ["http"]}, {"port": 443, "handlers": ["http", "tls"]}],
    }


def edge_get(server: Server, app: str, path: str = "/") -> httpx.Response:
    url = f"http://127.0.0.1:{server.edge_http_port}{path}"
    return httpx.get(url, headers={"Host": f"{app}.localhost:{server.edge_http_port}"}, timeout=60)


@pytest.mark.parametrize("autostop", ["stop", "suspend"])
def test_autostart_then_autostop_then_wake(server: Server, autostop: str) -> None:
    app = f"edge-{autostop}"
    with server.client() as api:
        assert api.post("/v1/apps", json={"app_name": app, "org_slug": "personal"}).status_code == 201
        config = {"image": server.image("busybox"), "services": [service(autostop)]}
        machine = create_machine(api, app, config, skip_launch=True)
        assert machine["config"]["services"][0]["autostop"] == (True if autostop == "stop" else "suspend")

        first = edge_get(server, app)  # the created machine starts on its first request
        assert first.status_code == 200 and "hello from aerodrome" in first.text
        assert first.headers.get("fly-request-id")
        assert api.get(f"/v1/apps/{app}/machines/{machine['id']}").json()["state"] == "started"

        rested = "stopped" if autostop == "stop" else "suspended"
        wait_for(api, app, machine["id"], rested, timeout=30)  # idle for 2 s → autostop

        again = edge_get(server, app)
        assert again.status_code == 200 and "hello" in again.text
        assert api.get(f"/v1/apps/{app}/machines/{machine['id']}").json()["state"] == "started"
        api.delete(f"/v1/apps/{app}")


def test_unknown_app_and_autostart_off(server: Server) -> None:
    unknown = edge_get(server, "no-such-app")
    assert (unknown.status_code, unknown.text.strip()) == (404, "no app is served at no-such-app.localhost")
    with server.client() as api:
        api.post("/v1/apps", json={"app_name": "edge-noauto", "org_slug": "personal"})
        svc = {**service("off"), "autostart": False}
        create_machine(api, "edge-noauto", {"image": server.image("busybox"), "services": [svc]}, skip_launch=True)
        refused = edge_get(server, "edge-noauto")
        assert refused.status_code == 503 and refused.text
        api.delete("/v1/apps/edge-noauto")


def test_burst_during_autostart_starts_once(server: Server) -> None:
    import concurrent.futures

    with server.client() as api:
        api.post("/v1/apps", json={"app_name": "edge-burst", "org_slug": "personal"})
        config = {"image": server.image("busybox"), "services": [service("off")]}
        machine = create_machine(api, "edge-burst", config, skip_launch=True)
        with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
            statuses = list(pool.map(lambda _: edge_get(server, "edge-burst").status_code, range(40)))
        assert statuses == [200] * 40
        events = api.get(f"/v1/apps/edge-burst/machines/{machine['id']}/events").json()
        assert [e["type"] for e in events].count("start") == 1
        api.delete("/v1/apps/edge-burst")


def test_a_silent_machine_gets_a_504_after_the_read_timeout(server: Server) -> None:
    with server.client() as api:
        api.post("/v1/apps", json={"app_name": "edge-silent", "org_slug": "personal"})
        silent = ["nc", "-ll", "-p", "8080", "-e", "sleep", "600"]  # accepts connections, never answers
        config = {
            "image": server.image("busybox"),
            "init": {"cmd": silent},
            "services": [service("off")],
        }
        create_machine(api, "edge-silent", config, skip_launch=True)
        reply = edge_get(server, "edge-silent")
        assert reply.status_code == 504 and "did not answer in time" in reply.text
        api.delete("/v1/apps/edge-silent")


ALLOCATE = (
    "mutation($input: AllocateIPAddressInput!) { allocateIpAddress(input: $input) "
    "{ ipAddress { id address type region createdAt } } }"
)
RELEASE = "mutation($input: ReleaseIPAddressInput!) { releaseIpAddress(input: $input) { clientMutationId } }"


def test_dedicated_v4_routes_without_host_until_released(server: Server) -> None:
    with server.client() as api:
        api.post("/v1/apps", json={"app_name": "edge-dedicated", "org_slug": "personal"})
        config = {"image": server.image("busybox"), "services": [service("off")]}
        create_machine(api, "edge-dedicated", config)
        variables = {"input": {"appId": "edge-dedicated", "type": "v4", "region": ""}}
        reply = api.post("/graphql", json={"query": ALLOCATE, "variables": variables}).json()
        address = reply["data"]["allocateIpAddress"]["ipAddress"]["address"]
        assert address.startswith("127.")

        response = httpx.get(f"http://{address}/", timeout=60)  # no Host naming the app
        assert response.status_code == 200 and "hello" in response.text

        released = api.post(
            "/graphql", json={"query": RELEASE, "variables": {"input": {"appId": "edge-dedicated", "ip": address}}}
        )
        assert "errors" not in released.json()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://{address}/", timeout=5)
        api.delete("/v1/apps/edge-dedicated")


def test_tls_with_the_aerodrome_ca_and_force_https(server: Server) -> None:
    import ssl

    with server.client() as api:
        api.post("/v1/apps", json={"app_name": "edge-tls", "org_slug": "personal"})
        svc = service("off")
        svc["ports"] = [
            {"port": 80, "handlers": ["http"], "force_https": True},
            {"port": 443, "handlers": ["http", "tls"]},
        ]
        create_machine(api, "edge-tls", {"image": server.image("busybox"), "services": [svc]})

        redirect = edge_get(server, "edge-tls")
        assert redirect.status_code == 301 and redirect.headers["location"].startswith("https://edge-tls.localhost")

        ca = server.data_dir / "edge" / "tls" / "ca" / "ca.pem"
        context = ssl.create_default_context(cafile=str(ca))
        host = f"edge-tls.localhost:{server.edge_https_port}"
        with httpx.Client(verify=context, timeout=60) as client:
            # not every resolver maps *.localhost to loopback: connect to it, and name the app by SNI and Host
            response = client.get(
                f"https://127.0.0.1:{server.edge_https_port}/",
                headers={"Host": host},
                extensions={"sni_hostname": "edge-tls.localhost"},
            )
        assert response.status_code == 200 and "hello" in response.text
        api.delete("/v1/apps/edge-tls")


def test_flycast_reaches_the_app_from_its_organisation_only(server: Server) -> None:
    image = server.image("busybox")
    with server.client() as api:
        api.post("/v1/apps", json={"app_name": "flycast-app", "org_slug": "personal"})
        create_machine(api, "flycast-app", {"image": image, "services": [service("off")]})
        variables = {"input": {"appId": "flycast-app", "type": "private_v6", "region": ""}}
        reply = api.post("/graphql", json={"query": ALLOCATE, "variables": variables}).json()
        address = reply["data"]["allocateIpAddress"]["ipAddress"]["address"]

        api.post("/v1/apps", json={"app_name": "flycast-peer", "org_slug": "personal"})
        peer = create_machine(api, "flycast-peer", {"image": image})
        wait_for(api, "flycast-peer", peer["id"], "started")
        # busybox-static's wget segfaults on IPv6 literals (NSS in a static binary): speak HTTP through nc,
        # keeping its input open until the reply is in
        request = "printf 'GET / HTTP/1.0\\r\\n\\r\\n'; sleep 2"
        fetch = ["sh", "-c", f"({request}) | nc -w 5 {address} 80"]
        inside = machine_exec(api, "flycast-peer", peer["id"], *fetch)
        assert inside["exit_code"] == 0 and "hello" in inside["stdout"], inside

    server.cli("orgs", "create", "flycast-other")
    with server.client(server.cli("tokens", "create", "--org", "flycast-other").strip()) as other:
        other.post("/v1/apps", json={"app_name": "flycast-stranger", "org_slug": "flycast-other"})
        stranger = create_machine(other, "flycast-stranger", {"image": image})
        wait_for(other, "flycast-stranger", stranger["id"], "started")
        refused = machine_exec(other, "flycast-stranger", stranger["id"], *fetch)
        assert (refused["exit_code"], refused["stdout"]) == (1, ""), refused  # no connection, not a bad reply
        other.delete("/v1/apps/flycast-stranger")
    with server.client() as api:
        api.delete("/v1/apps/flycast-app")
        api.delete("/v1/apps/flycast-peer")
