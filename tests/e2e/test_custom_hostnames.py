"""A custom hostname through the edge: its uploaded certificate is presented by SNI, it routes to the app's machine
over HTTP and HTTPS, it survives a restart of the server, and it stops routing once removed."""

from __future__ import annotations

import base64
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.helpers import create_machine, wait_for
from tests.api.test_certificates import make_chain
from tests.support.server import Server, running_server

HOST = "myhost.test"
APP = "custom-hosts"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server() as started:
        started.push_image("busybox")
        yield started


def service() -> dict[str, object]:
    return {
        "protocol": "tcp",
        "internal_port": 8080,
        "autostop": "off",
        "autostart": True,
        "ports": [{"port": 80, "handlers": ["http"]}, {"port": 443, "handlers": ["http", "tls"]}],
    }


def https_get(server: Server, trust: Path) -> httpx.Response:
    """GET / over TLS for HOST, trusting only `trust`; SNI and Host name the hostname, the address is loopback."""
    context = ssl.create_default_context(cafile=str(trust))
    with httpx.Client(verify=context, timeout=60) as client:
        return client.get(
            f"https://127.0.0.1:{server.edge_https_port}/",
            headers={"Host": HOST},
            extensions={"sni_hostname": HOST},
        )


def http_get(server: Server) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{server.edge_http_port}/", headers={"Host": HOST}, timeout=60)


def settled(get: Callable[[], httpx.Response], done: Callable[[httpx.Response], bool]) -> httpx.Response:
    """The first answer that is `done`, or the last one: the edge reuses a route for about a second."""
    end = time.monotonic() + 30
    response = get()
    while not done(response) and time.monotonic() < end:
        time.sleep(0.2)
        response = get()
    return response


def test_custom_certificate_is_served_and_routes_until_removed(server: Server, tmp_path: Path) -> None:
    chain, key, ca = make_chain(HOST)
    trust = tmp_path / "throwaway-ca.pem"
    trust.write_text(ca)
    with server.client() as api:
        assert api.post("/v1/apps", json={"app_name": APP, "org_slug": "personal"}).status_code == 201
        assert api.post("/v1/apps", json={"app_name": f"{APP}-other", "org_slug": "personal"}).status_code == 201
        machine = create_machine(api, APP, {"image": server.image("busybox"), "services": [service()]})
        wait_for(api, APP, machine["id"], "started")

        body = {"hostname": HOST, "fullchain": chain, "private_key": key}
        created = api.post(f"/v1/apps/{APP}/certificates/custom", json=body)
        assert created.status_code == 201, created.text

        # Verified against the throwaway CA alone: the edge presents the uploaded certificate for this SNI.
        served = https_get(server, trust)
        assert served.status_code == 200 and "hello" in served.text
        assert served.headers.get("fly-request-id")
        plain = http_get(server)
        assert plain.status_code == 200 and "hello" in plain.text

        check = api.post(f"/v1/apps/{APP}/certificates/{HOST}/check").json()
        assert check["configured"] and check["certificates"][0]["source"] == "custom", check

        claimed = api.post(f"/v1/apps/{APP}-other/certificates/custom", json=body)
        assert claimed.status_code == 422 and "another app" in claimed.json()["error"]
        assert https_get(server, trust).status_code == 200  # still the first app's

    # Stored certificates are served again after a restart.
    server.stop()
    server.start()
    with server.client() as api:
        wait_for(api, APP, machine["id"], "started")
        again = https_get(server, trust)
        assert again.status_code == 200 and "hello" in again.text

        assert api.delete(f"/v1/apps/{APP}/certificates/{HOST}").status_code == 204
        assert settled(lambda: http_get(server), lambda r: r.status_code != 200).status_code == 404
        # The edge now answers the SNI with a leaf from its own CA, which the throwaway CA does not vouch for.
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            https_get(server, trust)

        # Freed, the hostname can be claimed by the other app, and then routes there with a CA certificate.
        page = {"guest_path": "/www/index.html", "raw_value": base64.b64encode(b"the other app\n").decode()}
        config = {"image": server.image("busybox"), "services": [service()], "files": [page]}
        other = create_machine(api, f"{APP}-other", config)
        wait_for(api, f"{APP}-other", other["id"], "started")
        assert api.post(f"/v1/apps/{APP}-other/certificates/acme", json={"hostname": HOST}).status_code == 201
        edge_ca = server.data_dir / "edge" / "tls" / "ca" / "ca.pem"
        moved = settled(lambda: https_get(server, edge_ca), lambda r: "the other app" in r.text)
        assert moved.status_code == 200 and "the other app" in moved.text
        api.delete(f"/v1/apps/{APP}-other")
        api.delete(f"/v1/apps/{APP}")
